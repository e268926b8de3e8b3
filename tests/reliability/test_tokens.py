"""Item 6 of the reliability battery: tracking tokens under attack, over real HTTP.

Two users each sent a tracked HTML campaign through the real worker and an SMTP server on
loopback; `mailramp serve` answers the links. Then:

- hypothesis mutates genuine open, click and unsubscribe tokens — bit flips, character
  swaps, truncation, extension, other base64 alphabets and padding, stray characters,
  re-signing with another key (also under the real key's id), a changed purpose, record
  or link index, halves of two tokens spliced — and every one must be refused: a click
  answers 404 with no Location, an unsubscribe (GET or POST) 404, an open still the GIF;
  and nothing is recorded (no event, no suppression — read after every request — and the
  whole tracking state, event times and counters included, unchanged across the
  cross-purpose and cross-tenant sweeps);
- every genuine token is refused at the endpoints of the other two purposes;
- user A's tokens made to name user B's records and link indexes (and the reverse) are
  refused;
- a click never leads outside the stored message: validly signed tokens for any link index
  redirect to one of that campaign's links, rendered for that recipient, or to nothing;
- signatures are compared with hmac.compare_digest, once per verification of a
  well-formed token, and no `==` on a MAC remains in the source.

Figures (tokens tried and refused per kind) are printed: run with `-s`.
Reproduce: MAILRAMP_TEST_STRICT=1 .venv/bin/pytest -q -s -p no:cacheprovider
tests/reliability/test_tokens.py
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailramp
from mailramp.kit import signing
from mailramp.kit.secrets import generate_key
from mailramp.kit.signing import InvalidToken, Purpose, TokenSigner, derive_tracking_keys
from mailramp.tracking.links import TRAP_LINK_INDEX
from tests.support.tracking_site import SenderSpec, TrackingSite, tracking_site

pytestmark = pytest.mark.reliability

ANN_LINKS = ("https://acme.com/offer?e={{email}}", "https://acme.com/about")
BOB_LINKS = ("https://beta.example/one", "https://beta.example/two", "https://beta.example/3")
SENDERS = [
    SenderSpec("ann", ANN_LINKS, ("a1@example.com", "a2@example.com", "a3@example.com")),
    SenderSpec("bob", BOB_LINKS, ("b1@example.org", "b2@example.org")),
]
PATHS = {Purpose.OPEN: "o", Purpose.CLICK: "c", Purpose.UNSUBSCRIBE: "u", Purpose.ANSWER_OPEN: "a"}
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
STRAY = "=+/.~!*'(),;:@$ \n\t%"
"""Characters outside the base64url alphabet: padding, the standard alphabet's two,
URL punctuation, whitespace."""
PAYLOAD = struct.Struct(">BBH12sH")
MAC_BYTES = 12
TOKEN_BYTES = PAYLOAD.size + MAC_BYTES
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"

TALLY: Counter[str] = Counter()
"""Mutated or reused tokens sent to the server, and how many it refused, per kind."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[TrackingSite]:
    directory = tmp_path_factory.mktemp("tokens")
    database = directory / "mailramp.db"
    database.write_bytes(sqlite_template.read_bytes())
    with tracking_site(directory, f"sqlite:///{database}", SENDERS) as served:
        yield served


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """After the module's tests: the figures, and every attack counted was refused."""
    yield
    kinds = sorted({key.removesuffix(" refused") for key in TALLY if key.startswith("mutated")})
    tried = sum(TALLY[kind] for kind in kinds)
    refused = sum(TALLY[f"{kind} refused"] for kind in kinds)
    lines = [f"  {kind.removeprefix('mutated: ')}: {TALLY[kind]}" for kind in kinds]
    print(
        f"\n[item 6] mutated tokens over HTTP: {tried} tried, {refused} refused\n"
        + "\n".join(lines)
        + f"\n  cross-purpose reuse: {TALLY['cross-purpose']} tried, "
        f"{TALLY['cross-purpose refused']} refused"
        + f"\n  cross-tenant reuse: {TALLY['cross-tenant']} tried, "
        f"{TALLY['cross-tenant refused']} refused"
        + f"\n  validly signed clicks for any link index: "
        f"{TALLY['signed click, any link index']}, "
        f"{TALLY['signed click, any link index: no redirect']} without a redirect, the rest "
        "to a stored link"
    )
    assert tried == refused
    assert TALLY["cross-purpose"] == TALLY["cross-purpose refused"]
    assert TALLY["cross-tenant"] == TALLY["cross-tenant refused"]


@pytest.fixture(scope="module")
def client(site: TrackingSite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.base, headers={"User-Agent": BROWSER}, timeout=30) as http:
        yield http


def _decode(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _genuine(site: TrackingSite) -> list[tuple[str, Purpose, str]]:
    """(recipient, purpose, token) of every tracking link in every email sent."""
    found = []
    for recipient, sent in sorted(site.sent.items()):
        found.append((recipient, Purpose.OPEN, _token(sent.open_url)))
        found += [(recipient, Purpose.CLICK, _token(url)) for url in sent.click_urls]
        found.append((recipient, Purpose.UNSUBSCRIBE, _token(sent.list_unsubscribe)))
    return found


def _key_id(token: str) -> int:
    return int(PAYLOAD.unpack(_decode(token)[: PAYLOAD.size])[2])


def _repacked(token: str, **changes: Any) -> tuple[bytes, dict[str, Any]]:
    """The token's payload with `changes` (purpose, key_id, record, link_index) packed again,
    and its fields."""
    names = ("version", "purpose", "key_id", "record", "link_index")
    fields = dict(zip(names, PAYLOAD.unpack(_decode(token)[: PAYLOAD.size]), strict=True))
    fields |= changes
    return PAYLOAD.pack(*(fields[name] for name in names)), fields


def _forge(token: str, *, key: bytes, **changes: Any) -> str:
    """The token's payload with `changes`, MACed with `key` the way the server does — a key
    an attacker might hold, never the server's."""
    payload, fields = _repacked(token, **changes)
    label = f"mailramp/{Purpose(fields['purpose']).name.lower()}/".encode()
    mac = hmac.new(key, label + payload, hashlib.sha256).digest()[:MAC_BYTES]
    return _encode(payload + mac)


def _unsigned(token: str, **changes: Any) -> str:
    """The token with payload fields changed and the original MAC kept."""
    payload, _ = _repacked(token, **changes)
    return _encode(payload + _decode(token)[PAYLOAD.size :])


FOREIGN_KEY = derive_tracking_keys([generate_key()])[0]


def mutations(token: str, others: list[str]) -> st.SearchStrategy[tuple[str, str]]:
    """(kind, mutated token) of a genuine token; `others` are genuine tokens of any purpose
    and user, for splicing."""
    raw = _decode(token)
    bit_flip = st.integers(0, len(raw) * 8 - 1).map(
        lambda bit: _encode(
            raw[: bit // 8] + bytes([raw[bit // 8] ^ (1 << bit % 8)]) + raw[bit // 8 + 1 :]
        )
    )
    swap = (
        st.tuples(st.integers(0, len(token) - 1), st.sampled_from(URLSAFE))
        .filter(lambda change: token[change[0]] != change[1])
        .map(lambda change: token[: change[0]] + change[1] + token[change[0] + 1 :])
    )
    truncate = st.integers(1, len(token) - 1).map(lambda n: token[:n])
    drop_char = st.integers(0, len(token) - 1).map(lambda i: token[:i] + token[i + 1 :])
    extend = st.text(URLSAFE + STRAY, min_size=1, max_size=24).map(lambda extra: token + extra)
    prefix = st.text(URLSAFE, min_size=1, max_size=4).map(lambda extra: extra + token)
    insert_stray = st.tuples(st.integers(0, len(token)), st.sampled_from(STRAY)).map(
        lambda change: token[: change[0]] + change[1] + token[change[0] :]
    )
    standard_alphabet = st.just(token.replace("-", "+").replace("_", "/")).filter(
        lambda swapped: swapped != token
    )
    one_alphabet_char = st.sampled_from(
        [i for i, char in enumerate(token) if char in "-_"] or [0]
    ).map(lambda i: token[:i] + {"-": "+", "_": "/"}.get(token[i], token[i]) + token[i + 1 :])
    padded = st.sampled_from(["=", "==", "===", "%3D", "%3D%3D"]).map(lambda pad: token + pad)
    case = (
        st.integers(0, len(token) - 1)
        .filter(lambda i: token[i].isalpha())
        .map(lambda i: token[:i] + token[i].swapcase() + token[i + 1 :])
    )
    purpose, record = raw[1], raw[4:16]
    other_records = [_decode(other)[4:16] for other in others]
    foreign = st.sampled_from([True, False]).map(
        lambda keep_id: _forge(token, key=FOREIGN_KEY, **({} if keep_id else {"key_id": 1}))
    )
    foreign_any = st.tuples(st.sampled_from(sorted(set(PATHS))), st.integers(0, 65535)).map(
        lambda c: _forge(token, key=FOREIGN_KEY, purpose=int(c[0]), link_index=c[1])
    )
    other_purpose = st.sampled_from([p for p in (1, 2, 3) if p != purpose] + [0, 4, 255]).map(
        lambda p: _unsigned(token, purpose=p)
    )
    other_record = st.sampled_from([r for r in other_records if r != record] or [bytes(12)]).map(
        lambda r: _unsigned(token, record=r)
    )
    other_link = (
        st.integers(0, 65535)
        .filter(lambda i: i != int.from_bytes(raw[16:18], "big"))
        .map(lambda i: _unsigned(token, link_index=i))
    )
    other_version = (
        st.integers(0, 255).filter(lambda v: v != raw[0]).map(lambda v: _unsigned(token, version=v))
    )
    splice = st.sampled_from([o for o in others if o != token] or [token]).flatmap(
        lambda other: st.sampled_from(
            [
                _encode(raw[: PAYLOAD.size] + _decode(other)[PAYLOAD.size :]),
                _encode(_decode(other)[: PAYLOAD.size] + raw[PAYLOAD.size :]),
            ]
        )
    )
    strategies = {
        "bit flip": bit_flip,
        "character swap": swap,
        "truncation": truncate,
        "character dropped": drop_char,
        "extension": extend,
        "prefix": prefix,
        "stray character": insert_stray,
        "standard base64 alphabet": standard_alphabet,
        "one +/ for -_": one_alphabet_char,
        "padding": padded,
        "case swap": case,
        "re-signed with another key": foreign,
        "re-signed, another purpose or link": foreign_any,
        "purpose changed": other_purpose,
        "record changed": other_record,
        "link index changed": other_link,
        "version changed": other_version,
        "spliced": splice,
    }
    return st.sampled_from(sorted(strategies)).flatmap(
        lambda kind: strategies[kind].map(lambda mutated: (kind, mutated))
    )


def _assert_refused(
    client: httpx.Client, site: TrackingSite, purpose: Purpose, token: str, label: str
) -> None:
    """Send `token` where `purpose` tokens go (GET, and POST for unsubscribe) and check it is
    refused as a user would see it, and that nothing was recorded."""
    before = site.additions()
    path = f"/t/{PATHS[purpose]}/{quote(token, safe='')}"
    if token.endswith("/") and "/" not in token.rstrip("/"):
        # The server only tidies the path (Starlette's trailing-slash redirect, to this same
        # URL without the slash, on this server): the token is not read.
        tidied = f"{site.base}/t/{PATHS[purpose]}/{quote(token.rstrip('/'), safe='')}"
        for response in (client.get(path), client.post(path)):
            assert response.status_code == 307, (label, token, response.status_code)
            assert unquote(response.headers["location"]) == unquote(tidied), (label, token)
        assert site.additions() == before, (label, token)
        return
    reaches_route = "/" not in token and token not in ("", ".", "..")
    responses = []
    if purpose in (Purpose.OPEN, Purpose.ANSWER_OPEN):  # a pixel whatever the token
        pixel = client.get(path)
        responses.append(pixel)
        if reaches_route:
            assert pixel.status_code == 200, (label, token, pixel.status_code)
            assert pixel.headers["content-type"] == "image/gif"
            assert pixel.content.startswith(b"GIF89a")
        else:
            assert pixel.status_code == 404
    elif purpose is Purpose.CLICK:
        for response in (client.get(path), client.head(path)):
            responses.append(response)
            assert response.status_code in (404, 405), (label, token, response.status_code)
            assert "location" not in response.headers, (label, token)
    else:
        page = client.get(path)
        posted = client.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        responses += [page, posted]
        for response in (page, posted):
            assert response.status_code in (404, 405), (label, token, response.status_code)
            assert "unsubscribed" not in response.text.lower(), (label, token)
    for response in responses:
        assert response.status_code < 500
        if response.status_code == 404 and reaches_route and response.request.method != "HEAD":
            assert "Link not valid" in response.text or response.content.startswith(b"GIF")
    assert site.additions() == before, (label, token)


@settings(
    max_examples=900,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_tokens_are_all_refused_over_http(
    site: TrackingSite, client: httpx.Client, data: st.DataObject
) -> None:
    genuine = _genuine(site)
    others = [token for _, _, token in genuine]
    recipient, purpose, token = data.draw(st.sampled_from(genuine), label="genuine")
    kind, mutated = data.draw(mutations(token, others), label="mutation")
    if mutated == token:
        return  # a mutation that changed nothing (e.g. no -_ to swap) is not an attack
    target = data.draw(st.sampled_from([purpose, *(p for p in Purpose if p != purpose)]))
    TALLY[f"mutated: {kind}"] += 1
    _assert_refused(client, site, target, mutated, f"{kind} of {recipient}'s {purpose.name}")
    TALLY[f"mutated: {kind} refused"] += 1


def test_every_genuine_token_is_refused_for_the_other_purposes(
    site: TrackingSite, client: httpx.Client
) -> None:
    state = site.state()
    for recipient, purpose, token in _genuine(site):
        for other in Purpose:
            if other is purpose:
                continue
            TALLY["cross-purpose"] += 1
            _assert_refused(client, site, other, token, f"{recipient}'s {purpose.name}")
            TALLY["cross-purpose refused"] += 1
    assert site.state() == state


def test_one_users_tokens_never_reach_another_users_records_or_links(
    site: TrackingSite, client: httpx.Client
) -> None:
    state = site.state()
    ann = [(r, p, t) for r, p, t in _genuine(site) if r.endswith("example.com")]
    bob = [(r, p, t) for r, p, t in _genuine(site) if r.endswith("example.org")]
    forged = []
    for mine, theirs in ((ann, bob), (bob, ann)):
        their_records = sorted({site.sent[r].record_id for r, _, _ in theirs})
        for _recipient, purpose, token in mine:
            for record in their_records:
                # The other user's record id in my token (MAC kept), and re-MACed with a
                # key that is not the server's but under its key id.
                forged.append((purpose, _unsigned(token, record=bytes.fromhex(record))))
                forged.append(
                    (purpose, _forge(token, key=FOREIGN_KEY, record=bytes.fromhex(record)))
                )
            if purpose is Purpose.CLICK:
                for index in range(len(BOB_LINKS) + 1):  # bob's link ids, and one past
                    if _decode(token)[16:18] != index.to_bytes(2, "big"):
                        forged.append((purpose, _unsigned(token, link_index=index)))
            for _, their_purpose, their_token in theirs:
                # My payload with their MAC and theirs with mine.
                forged.append((purpose, _encode(_decode(token)[:18] + _decode(their_token)[18:])))
                forged.append(
                    (their_purpose, _encode(_decode(their_token)[:18] + _decode(token)[18:]))
                )
    for purpose, token in forged:
        TALLY["cross-tenant"] += 1
        _assert_refused(client, site, purpose, token, "cross-tenant")
        TALLY["cross-tenant refused"] += 1
    assert site.state() == state
    print(f"\n[item 6] cross-tenant forgeries refused: {len(forged)}")


_SIGNER: dict[str, TokenSigner] = {}


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_click_only_ever_leads_to_a_link_of_the_stored_message(
    site: TrackingSite, client: httpx.Client, data: st.DataObject
) -> None:
    signer = _SIGNER.setdefault("signer", site.signer())
    recipient = data.draw(st.sampled_from(sorted(site.sent)))
    sent = site.sent[recipient]
    index = data.draw(st.one_of(st.integers(0, 4), st.integers(0, 65535)), label="link index")
    links = ANN_LINKS if sent.login == "ann" else BOB_LINKS
    stored = [link.replace("{{email}}", recipient) for link in links]
    token = signer.sign(Purpose.CLICK, sent.record_id, index)
    response = client.get(f"/t/c/{token}")
    TALLY["signed click, any link index"] += 1
    if index < len(stored):
        assert response.status_code == 302
        assert response.headers["location"] == stored[index]
    elif index == TRAP_LINK_INDEX:  # the trap link: logged, then to the message's first link
        assert response.status_code == 302
        assert response.headers["location"] == stored[0]
    else:
        assert response.status_code == 404 and "location" not in response.headers
        TALLY["signed click, any link index: no redirect"] += 1


def _corpus(site: TrackingSite) -> list[tuple[str, Purpose]]:
    """Genuine tokens and a deterministic spread of their mutations, with the purpose each
    is presented for."""
    corpus: list[tuple[str, Purpose]] = []
    genuine = _genuine(site)
    for _, purpose, token in genuine:
        raw = _decode(token)
        corpus.append((token, purpose))
        corpus += [(token, other) for other in Purpose if other is not purpose]
        corpus += [
            (
                _encode(
                    raw[: bit // 8] + bytes([raw[bit // 8] ^ (1 << bit % 8)]) + raw[bit // 8 + 1 :]
                ),
                purpose,
            )
            for bit in range(0, len(raw) * 8, 7)
        ]
        corpus += [(token[:n], purpose) for n in (0, 1, 20, 39)]
        corpus += [(token + extra, purpose) for extra in ("A", "=", "~", "AAAA")]
        if "-" in token or "_" in token:
            corpus.append((token.replace("-", "+").replace("_", "/"), purpose))
        corpus.append((_forge(token, key=FOREIGN_KEY), purpose))
        corpus.append((_forge(token, key=FOREIGN_KEY, key_id=1), purpose))
        corpus.append((_unsigned(token, version=2), purpose))
    return corpus


def test_signatures_are_compared_in_constant_time(site: TrackingSite) -> None:
    signer = site.signer()
    real_compare = hmac.compare_digest
    verified = rejected = 0
    with mock.patch.object(signing.hmac, "compare_digest", wraps=real_compare) as compare:
        for token, purpose in _corpus(site):
            compare.reset_mock()
            well_formed = len(token) == 40 and set(token) <= set(URLSAFE)
            try:
                signer.verify(token, purpose)
                verified += 1
            except InvalidToken:
                rejected += 1
            # Every token that gets as far as a signature is checked with compare_digest,
            # exactly once; a malformed one is refused before any secret is involved.
            assert compare.call_count == (1 if well_formed else 0), (token, purpose)
    assert verified == len(_genuine(site))
    print(f"\n[item 6] in-process verifications: {verified} accepted, {rejected} refused")


def _compares_a_mac(node: ast.Compare) -> bool:
    names = {
        n.id.lower() if isinstance(n, ast.Name) else n.attr.lower()
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    }
    calls = {
        (c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", ""))
        for c in ast.walk(node)
        if isinstance(c, ast.Call)
    }
    suspicious = {"mac", "_mac", "signature", "digest", "hexdigest", "expected_mac"}
    return bool(names & suspicious or calls & {"_mac", "digest", "hexdigest", "new"})


def test_no_signature_is_compared_with_equality_in_the_source() -> None:
    root = Path(mailramp.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Compare)
                and any(isinstance(op, ast.Eq | ast.NotEq | ast.Is | ast.IsNot) for op in node.ops)
                and _compares_a_mac(node)
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
    # And the verifier does use the constant-time comparison.
    verify = ast.unparse(
        next(
            n
            for n in ast.walk(ast.parse(Path(signing.__file__).read_text()))
            if isinstance(n, ast.FunctionDef) and n.name == "verify"
        )
    )
    assert "hmac.compare_digest(" in verify
