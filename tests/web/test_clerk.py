"""Clerk sign-in against a stand-in JWKS server on loopback, and Clerk's webhooks with Svix
signatures, through `mailramp serve`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.clerk_webhooks import WEBHOOK_SECRET, signed_delivery, user_event
from tests.support.jwks import JwksServer, RsaKey
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving

PARTY = "http://localhost:3000"


@pytest.fixture(scope="module")
def clerk_key() -> RsaKey:
    return RsaKey("ins_test_1")


@pytest.fixture(scope="module")
def jwks_base(clerk_key: RsaKey, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    jwks = JwksServer(clerk_key).start()
    port = free_port()
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_CLERK_JWKS_URL=jwks.url,
        MAILRAMP_CLERK_AUTHORIZED_PARTIES=PARTY,
        CLERK_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    try:
        with serving(port, cwd=tmp_path_factory.mktemp("clerk"), env=environment):
            yield f"http://127.0.0.1:{port}"
    finally:
        jwks.stop()


def _me(base: str, token: str) -> httpx.Response:
    return httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_a_valid_token_signs_in_and_creates_the_user_once(
    jwks_base: str, clerk_key: RsaKey
) -> None:
    token = clerk_key.token(sub="user_first", email="first@example.com", name="First Person")
    response = _me(jwks_base, token)
    assert response.status_code == 200, response.text
    user = response.json()
    assert user["clerk_user_id"] == "user_first" and user["login_id"] == "first@example.com"
    assert user["user_name"] == "First Person"
    again = _me(jwks_base, clerk_key.token(sub="user_first"))
    assert again.json()["_id"] == user["_id"]
    cookie = httpx.get(f"{jwks_base}/api/v1/me", cookies={"__session": token})
    assert cookie.json()["_id"] == user["_id"]


@pytest.mark.parametrize(
    "case", ["expired", "not_yet_valid", "wrong_key", "wrong_party", "tampered", "no_exp"]
)
def test_bad_tokens_are_refused(jwks_base: str, clerk_key: RsaKey, case: str) -> None:
    now = int(time.time())
    token = {
        "expired": lambda: clerk_key.token(exp=now - 60, iat=now - 120, nbf=now - 120),
        "not_yet_valid": lambda: clerk_key.token(nbf=now + 120),
        "wrong_key": lambda: RsaKey("ins_test_1").token(),
        "wrong_party": lambda: clerk_key.token(azp="https://evil.example.com"),
        "tampered": lambda: _tamper(clerk_key.token()),
        "no_exp": lambda: clerk_key.token(exp=None),
    }[case]()
    response = _me(jwks_base, token)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthenticated", "message": "invalid session token"}
    }


def _tamper(token: str) -> str:
    import base64

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "user_someone_else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_small_clock_skew_is_tolerated(jwks_base: str, clerk_key: RsaKey) -> None:
    now = int(time.time())
    assert _me(jwks_base, clerk_key.token(sub="user_skew", nbf=now + 3)).status_code == 200


def test_clerk_cookie_needs_our_origin_for_changes(jwks_base: str, clerk_key: RsaKey) -> None:
    token = clerk_key.token(sub="user_cookie")
    body = {"name": "k"}
    foreign = httpx.post(
        f"{jwks_base}/api/v1/api-keys",
        json=body,
        cookies={"__session": token},
        headers={"Origin": "https://evil.example.com"},
    )
    assert foreign.status_code == 403
    ours = httpx.post(
        f"{jwks_base}/api/v1/api-keys",
        json=body,
        cookies={"__session": token},
        headers={"Origin": PARTY},
    )
    assert ours.status_code == 201


def test_webhooks_keep_users_in_sync(jwks_base: str, clerk_key: RsaKey) -> None:
    url = f"{jwks_base}/api/v1/webhooks/clerk"
    body, headers = signed_delivery(user_event("user.created", "user_hooked", "Webby"))
    created = httpx.post(url, content=body, headers=headers)
    assert created.status_code == 200 and created.json()["handled"] is True
    me = _me(jwks_base, clerk_key.token(sub="user_hooked")).json()
    assert me["user_name"] == "Webby Hook" and me["email"] == "webby@example.com"

    body, headers = signed_delivery(user_event("user.updated", "user_hooked", "Renamed"))
    assert httpx.post(url, content=body, headers=headers).status_code == 200
    assert _me(jwks_base, clerk_key.token(sub="user_hooked")).json()["user_name"] == "Renamed Hook"

    body, headers = signed_delivery({"type": "user.deleted", "data": {"id": "user_hooked"}})
    assert httpx.post(url, content=body, headers=headers).status_code == 200
    assert _me(jwks_base, clerk_key.token(sub="user_hooked")).status_code == 401


def test_webhooks_with_bad_signatures_change_nothing(jwks_base: str, clerk_key: RsaKey) -> None:
    url = f"{jwks_base}/api/v1/webhooks/clerk"
    body, headers = signed_delivery(
        user_event("user.created", "user_forged", "Forged"),
        secret="whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    good_body, good_headers = signed_delivery(user_event("user.created", "user_forged", "Forged"))
    tampered = good_body.replace(b"Forged", b"Evil")
    assert httpx.post(url, content=tampered, headers=good_headers).status_code == 401
    assert httpx.post(url, content=good_body, headers={}).status_code == 401
    # Nothing was created by those: the first real sign-in makes the user, named from the token.
    me = _me(jwks_base, clerk_key.token(sub="user_forged")).json()
    assert me["user_name"] == "user_forged"


def test_networkless_pem_key(tmp_path_factory: pytest.TempPathFactory, clerk_key: RsaKey) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # No MAILRAMP_CLERK_AUTHORIZED_PARTIES: only tokens issued to this server's own origin.
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        CLERK_JWT_KEY=clerk_key.public_pem(),
        MAILRAMP_PUBLIC_BASE_URL=base,
    )
    with serving(port, cwd=tmp_path_factory.mktemp("pem"), env=environment):
        mine = clerk_key.token(sub="user_pem", azp=base)
        assert _me(base, mine).json()["clerk_user_id"] == "user_pem"
        other_site = clerk_key.token(sub="user_pem", azp="https://other-app.example")
        assert _me(base, other_site).status_code == 401
        assert _me(base, RsaKey("other").token(sub="user_pem")).status_code == 401


def test_closed_sign_up_lets_only_existing_clerk_users_in(
    tmp_path_factory: pytest.TempPathFactory, clerk_key: RsaKey
) -> None:
    port = free_port()
    directory = tmp_path_factory.mktemp("closed")
    base = f"http://127.0.0.1:{port}"
    opened = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        CLERK_JWT_KEY=clerk_key.public_pem(),
        MAILRAMP_CLERK_AUTHORIZED_PARTIES=PARTY,
    )
    with serving(port, cwd=directory, env=opened):
        assert _me(base, clerk_key.token(sub="user_early")).status_code == 200
    closed = opened | {"MAILRAMP_SIGNUP_OPEN": "false"}
    with serving(port, cwd=directory, env=closed):
        assert _me(base, clerk_key.token(sub="user_early")).status_code == 200
        refused = _me(base, clerk_key.token(sub="user_late", email="late@example.com"))
        assert refused.status_code == 403
        assert "sign-up is closed" in refused.json()["error"]["message"]
        again = _me(base, clerk_key.token(sub="user_late"))
        assert again.status_code == 403  # and nothing was created by the refusal
