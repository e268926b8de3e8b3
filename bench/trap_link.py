"""What a trap link costs in SpamAssassin, with its local rules only.

A trap link is one link in the HTML part that a person can neither see nor follow but that
link scanners fetch. Each candidate markup is added to the same cold email, built by
mailramp's own code (`build_message` with `TrackingLinks`: click links, open pixel,
unsubscribe footer and headers), and the emails are scored by `spamassassin -L` (no network
tests, no Bayes). Printed per candidate: the bytes it adds to the HTML part, the score, the
difference from the same email without a trap link (delta), the difference from the same
email with as many spaces instead (vs pad: what the markup costs beyond its size), and the
rules hit beyond the email without a trap link. Size alone moves scores: with the open
pixel, HTML_IMAGE_ONLY_* score the HTML part in 400-byte buckets, and LIST_PARTIAL_SHORT_MSG
fires below 1,024 bytes; with several `--lengths` (paragraphs added, one email each) a
second table gives each candidate's range over those sizes.

    .venv/bin/python -m bench.trap_link [--lengths 0,1,2,...] [--candidates a_empty,...]
        [--no-pixel] [--relay none|rdns|nordns] [--write DIR]
"""

from __future__ import annotations

import argparse
import mailbox
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import format_datetime
from pathlib import Path

from mailramp.campaigns.models import Campaign, MessageFormat
from mailramp.kit.signing import TokenSigner
from mailramp.mailboxes.models import Mailbox
from mailramp.sending.message import build_message
from mailramp.tracking.links import TRAP_LINK_INDEX, TrackingLinks
from mailramp.tracking.models import EmailTracking

PUBLIC_BASE_URL = "https://mailramp.acme-tools.io"
"""The installation's public address; the mailbox's verified tracking domain replaces it."""
TRACKING_DOMAIN = "links.acme.com"
TRAP_INDEX = TRAP_LINK_INDEX
"""The trap link's URL: a click URL (`/t/c/`) with a link index past any message's last."""
URL = "{url}"
"""Where a candidate's markup puts the trap URL."""
GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

CANDIDATES: dict[str, str] = {
    "a_empty": f'<a href="{URL}"></a>',
    "b_display_none_text": f'<a href="{URL}" style="display:none">Manage preferences</a>',
    "c_img_1x1": f'<a href="{URL}"><img src="{GIF}" width="1" height="1" alt=""></a>',
    "d_tiny_white_text": (
        f'<a href="{URL}" aria-hidden="true" tabindex="-1" '
        'style="font-size:0;color:#ffffff;text-decoration:none">Manage preferences</a>'
    ),
    "d2_font_white_text": (
        f'<a href="{URL}" aria-hidden="true" tabindex="-1">'
        '<font color="#ffffff" size="1">Manage preferences</font></a>'
    ),
    "e_link_alternate": f'<link rel="alternate" href="{URL}">',
    "e2_area": f'<map name="t"><area shape="rect" coords="0,0,0,0" href="{URL}" alt=""></map>',
    "f_empty_aria": f'<a href="{URL}" aria-hidden="true" tabindex="-1"></a>',
    "g_empty_display_none": (
        f'<a href="{URL}" style="display:none" aria-hidden="true" tabindex="-1"></a>'
    ),
    "h_comment": f"<!-- {URL} -->",
}

SUBJECT = "Support tickets at {{company|your team}}"
GREETING = "<p>Hi {{first_name|there}},</p>\n"
OPENING = (
    "<p>I saw that {{company|your team}} is hiring for its support team. We help teams like "
    "yours answer tickets faster with a shared inbox that sorts questions by topic.</p>\n"
)
PARAGRAPHS = (
    "<p>Last quarter a logistics company about your size moved its support inbox to us; "
    "its first answers now go out in under two hours instead of six, with the same team.</p>\n",
    "<p>Setting it up takes an afternoon: connect the inbox you already use, pick the topics "
    "you care about, and the first questions are sorted before the end of the day.</p>\n",
    "<p>Nothing changes for your customers. They write to the same address, get answers "
    "from the same people, and every reply stays in the thread they started.</p>\n",
    "<p>Your team keeps its tools too: tickets can still be handed to the help desk you "
    "run today, and the reports show which topics take the most of its time.</p>\n",
)
CLOSING = (
    '<p>Here is a <a href="https://acme.com/overview">two-minute overview</a> of how it '
    "works. Would a short call next week be useful?</p>\n"
    "<p>Best,<br>Ann Miller<br>Acme</p>"
)
NOW = datetime.now(UTC)
USER = "6750a1b2c3d4e5f600000001"
MAILBOX = "6750a1b2c3d4e5f600000002"
RECORD = "6750a1b2c3d4e5f600000003"
CAMPAIGN = "0b6f5c1e-3c2a-4d6e-8f10-2a3b4c5d6e7f"
SIGNER = TokenSigner([bytes(range(32))])  # a fixed key: the same tokens on every run

RELAYS = {
    "none": "",
    "rdns": "from smtp.acme.com (smtp.acme.com [198.51.100.25])",
    "nordns": "from smtp.acme.com (unknown [198.51.100.25])",
}
"""`--relay`: the email as sent (no Received header), or as the recipient's server got it
from the sender's, with or without reverse DNS (RDNS_NONE). The address is a documentation
one, so every such email also hits RCVD_ILLEGAL_IP, trap link or not."""

SPAMASSASSIN = [
    "spamassassin",
    "-L",  # local tests only: no DNS blocklists, no Razor, Pyzor or DCC
    "-x",  # no user preferences file created
    "--cf=use_bayes 0",  # the score set of an untrained Bayes database, and nothing learnt
    "--cf=bayes_auto_learn 0",
    "--cf=report_safe 0",  # a spam's headers marked, its body left as it is
    "--cf=add_header all Trap _TESTSSCORES(,)_",
]


@dataclass(frozen=True)
class _TrapLinks(TrackingLinks):
    """mailramp's tracking with one more link in the HTML part, after the unsubscribe footer
    and before the open pixel (until the chosen markup moves into TrackingLinks itself)."""

    trap: str | None = None

    def trap_url(self, record_id: str) -> str:
        return self.click_url(record_id, TRAP_INDEX)

    def instrument(self, campaign: Campaign, record_id: str) -> str:
        body = super().instrument(campaign, record_id)
        if self.trap is None or campaign.message_format is not MessageFormat.HTML:
            return body
        markup = self.trap.replace(URL, self.trap_url(record_id))
        pixel = body.find(f'<img src="{self.open_url(record_id)}"')
        closing = re.search(r"</body\s*>", body, re.IGNORECASE)
        at = pixel if pixel >= 0 else closing.start() if closing else len(body)
        return body[:at] + markup + body[at:]


def message_with_trap(
    markup: str | None, *, paragraphs: int = 0, track_opens: bool = True
) -> bytes:
    """The email mailramp sends one recipient, with `markup` (its trap URL written `{url}`)
    at the end of the HTML part, or without a trap link (None); `paragraphs` more
    paragraphs make it longer."""
    message = GREETING + OPENING
    message += "".join(PARAGRAPHS[i % len(PARAGRAPHS)] for i in range(paragraphs)) + CLOSING
    campaign = Campaign(
        id=USER,
        campaign_id=CAMPAIGN,
        user_id=USER,
        mailbox_id=MAILBOX,
        campaign_name="Support teams",
        subject=SUBJECT,
        message=message,
        duration=24,
        start_time=NOW,
        end_time=NOW,
        created_at=NOW,
        updated_at=NOW,
        created_by=USER,
        message_format=MessageFormat.HTML,
        track_opens=track_opens,
    )
    sender = Mailbox(
        id=MAILBOX,
        mailbox_id=MAILBOX,
        user_id=USER,
        email="ann@acme.com",
        provider="smtp",
        display_name="Ann Miller",
        tracking_domain=TRACKING_DOMAIN,
        tracking_domain_verified_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )
    record = EmailTracking(
        id=RECORD,
        campaign_id=CAMPAIGN,
        user_id=USER,
        mailbox_id=MAILBOX,
        recipient_email="dana@globex.com",
        merge_variables={"first_name": "Dana", "company": "Globex"},
        created_at=NOW,
        updated_at=NOW,
    )
    tracking = replace(_TrapLinks(SIGNER, PUBLIC_BASE_URL), trap=markup)
    built = build_message(
        campaign=campaign, mailbox=sender, record=record, sent_at=NOW, tracking=tracking
    )
    return built.as_bytes()


def _part(message: bytes, subtype: str) -> str:
    body = message_from_bytes(message, policy=policy.default).get_body(preferencelist=(subtype,))
    assert body is not None, subtype
    return str(body.get_content())


def _rules(scored: bytes) -> dict[str, float]:
    header = message_from_bytes(scored, policy=policy.compat32)["X-Spam-Trap"]
    rules = {}
    for test in "".join(str(header).split()).split(","):
        if test:
            name, _, points = test.partition("=")
            rules[name] = float(points)
    return rules


def _run(command: list[str], stdin: bytes) -> bytes:
    run = subprocess.run(command, input=stdin, capture_output=True)
    if run.returncode != 0:
        lines = run.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
        raise SystemExit(f"spamassassin failed ({run.returncode}): {lines[-1]}")
    return run.stdout


def score_one(message: bytes) -> dict[str, float]:
    """The rules one `spamassassin -L -t` run hits, each with its points."""
    return _rules(_run([*SPAMASSASSIN, "-t"], message))


def score_many(messages: list[bytes]) -> list[dict[str, float]]:
    """The same for many messages, in one run (`--mbox`: the rules load once). It does not
    keep their order: each result is matched by its MIME boundary, random per message."""
    boundaries = [_boundary(message) for message in messages]
    assert len(set(boundaries)) == len(messages), "two messages with the same boundary"
    with tempfile.TemporaryDirectory() as directory:
        inbox = mailbox.mbox(Path(directory) / "in.mbox")
        for message in messages:
            inbox.add(message)
        inbox.close()
        path = Path(directory) / "out.mbox"
        path.write_bytes(
            _run([*SPAMASSASSIN, "--mbox"], (Path(directory) / "in.mbox").read_bytes())
        )
        results = mailbox.mbox(path)
        try:
            scored = {_boundary(result.as_bytes()): _rules(result.as_bytes()) for result in results}
        finally:
            results.close()
    return [scored[boundary] for boundary in boundaries]


def _boundary(message: bytes) -> str:
    boundary = message_from_bytes(message, policy=policy.compat32).get_boundary()
    assert boundary is not None
    return boundary


def describe_spamassassin() -> str:
    """Its version, and the rules directory it reads (sa-update's, or the package's)."""
    version = subprocess.run(["spamassassin", "-V"], capture_output=True, text=True).stdout
    lint = subprocess.run(
        [*SPAMASSASSIN, "--lint", "-D", "config"], capture_output=True, text=True
    ).stderr
    found = re.search(r'using "([^"]+)" for default rules dir', lint)
    return f"{' '.join(version.split()[:3])}, rules from {found.group(1) if found else '?'}"


def total(rules: dict[str, float]) -> float:
    return sum(rules.values())


def listed(rules: dict[str, float]) -> str:
    return ",".join(f"{rule}={points:g}" for rule, points in sorted(rules.items())) or "-"


def beyond(rules: dict[str, float], baseline: dict[str, float]) -> str:
    """The rules hit beyond the baseline's, and those of the baseline no longer hit."""
    extra = listed({rule: points for rule, points in rules.items() if rule not in baseline})
    gone = sorted(set(baseline) - set(rules))
    return extra + (f" (no longer {','.join(gone)})" if gone else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument(
        "--lengths", default="0", help="paragraphs to add, e.g. 0,1,2,...: one email each"
    )
    parser.add_argument("--no-pixel", action="store_true", help="campaign without open tracking")
    parser.add_argument("--relay", choices=RELAYS, default="none", help="see RELAYS")
    parser.add_argument("--write", type=Path, help="also write the first length's emails here")
    arguments = parser.parse_args()
    if shutil.which("spamassassin") is None:
        print("spamassassin not found: run scripts/install-services", file=sys.stderr)
        sys.exit(2)
    names = [name for name in arguments.candidates.split(",") if name]
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        parser.error(f"unknown candidates: {', '.join(unknown)}")
    lengths = [int(n) for n in arguments.lengths.split(",")]
    track_opens = not arguments.no_pixel
    received = RELAYS[arguments.relay]
    if received:
        received = (
            f"Received: {received}\n\tby mx.globex.com (Postfix) with ESMTPS id 4Q9Xk71Zz2\n"
            f"\tfor <dana@globex.com>; {format_datetime(NOW)}\n"
        )

    print(f"{describe_spamassassin()}; local tests only (-L), no Bayes")
    trap_url = _TrapLinks(SIGNER, f"https://{TRACKING_DOMAIN}").trap_url(RECORD)
    print(
        f"trap URL (HTML part only): {trap_url}; open pixel: {'yes' if track_opens else 'no'}; "
        f"relay: {arguments.relay}"
    )
    # Per length: the email without a trap link (None), with each candidate, and with as
    # many spaces as the candidate adds: what its size alone does to the score.
    emails: dict[tuple[int, str | None, bool], bytes] = {}
    for n in lengths:
        emails[n, None, False] = message_with_trap(None, paragraphs=n, track_opens=track_opens)
        for name in names:
            email = message_with_trap(CANDIDATES[name], paragraphs=n, track_opens=track_opens)
            assert trap_url in _part(email, "html"), name
            assert trap_url not in _part(email, "plain"), name
            emails[n, name, False] = email
            spaces = " " * len(CANDIDATES[name].replace(URL, trap_url))
            emails[n, name, True] = message_with_trap(spaces, paragraphs=n, track_opens=track_opens)
    emails = {key: received.encode() + email for key, email in emails.items()}
    if arguments.write:
        arguments.write.mkdir(parents=True, exist_ok=True)
        for (n, name, padding), email in emails.items():
            if n == lengths[0] and not padding:
                (arguments.write / f"{name or 'baseline'}.eml").write_bytes(email)

    started = time.perf_counter()
    single = score_one(emails[lengths[0], None, False])
    one_run = time.perf_counter() - started
    started = time.perf_counter()
    results = dict(zip(emails, score_many(list(emails.values())), strict=True))
    batch = time.perf_counter() - started
    assert results[lengths[0], None, False] == single, (results[lengths[0], None, False], single)

    def score(n: int, name: str | None, padding: bool = False) -> float:
        return total(results[n, name, padding])

    def size(n: int, name: str | None) -> int:
        return len(_part(emails[n, name, False], "html"))

    first = lengths[0]
    base = results[first, None, False]
    print(f"baseline, HTML part {size(first, None)} bytes: {score(first, None):.3f} {listed(base)}")
    print(
        f"{'candidate':22s} {'bytes':>5s} {'score':>6s} {'delta':>7s} {'vs pad':>7s}  "
        "rules beyond baseline"
    )
    for name in names:
        print(
            f"{name:22s} {size(first, name) - size(first, None):+5d} {score(first, name):6.3f} "
            f"{score(first, name) - score(first, None):+7.3f} "
            f"{score(first, name) - score(first, name, True):+7.3f}  "
            f"{beyond(results[first, name, False], base)}"
        )
    if len(lengths) > 1:
        sizes = [size(n, None) for n in lengths]
        bases = [score(n, None) for n in lengths]
        print(
            f"over {len(lengths)} lengths, HTML part {min(sizes)}-{max(sizes)} bytes, "
            f"baseline {min(bases):.3f}-{max(bases):.3f}:"
        )
        print(
            f"{'candidate':22s} {'delta min..max':>16s} {'changed':>7s} "
            f"{'vs pad min..max':>16s} {'changed':>7s}  rules unlike the padding's"
        )
        for name in names:
            deltas = [score(n, name) - score(n, None) for n in lengths]
            versus = [score(n, name) - score(n, name, True) for n in lengths]
            rules = sorted(
                {
                    rule
                    for n in lengths
                    for rule in set(results[n, name, False]) ^ set(results[n, name, True])
                }
            )
            print(f"{name:22s} {_spread(deltas)} {_spread(versus)}  {','.join(rules) or '-'}")
    print(
        f"one spamassassin run (one email): {one_run:.2f} s; {len(emails)} emails in one "
        f"--mbox run: {batch:.2f} s"
    )


def _spread(deltas: list[float]) -> str:
    """The smallest and largest difference, and how many of them are not 0."""
    changed = sum(1 for delta in deltas if abs(delta) > 0.0005)
    return f"{min(deltas):+7.3f}..{max(deltas):+7.3f} {changed:3d}/{len(deltas):<3d}"


if __name__ == "__main__":
    main()
