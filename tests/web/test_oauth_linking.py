"""Linking Outlook and Gmail mailboxes by OAuth, through a real `mailramp serve` and
stand-ins of Microsoft's and Google's servers on loopback; token refresh against the same
stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from mailramp.config import Settings
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.oauth import (
    LinkState,
    OAuthGrantRevoked,
    OAuthLinking,
    StateSealer,
    endpoints_from_settings,
)
from mailramp.runtime import open_runtime
from tests.support.oauth_servers import GoogleStandIn, MicrosoftStandIn, OAuthStandIn, s256
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving

PASSWORD = "correct horse battery staple"
KEY = generate_key()
MICROSOFT_SECRET = "ms-CANARY-client-secret"
GOOGLE_SECRET = "google-CANARY-client-secret"


@dataclass
class World:
    base: str
    directory: Path
    settings: Settings
    microsoft: MicrosoftStandIn
    google: GoogleStandIn
    seen: list[str]
    clients: list[httpx.Client]

    def stand_in(self, provider: str) -> OAuthStandIn:
        return self.microsoft if provider == "outlook" else self.google


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("oauth")
    microsoft = MicrosoftStandIn(client_id="ms-client", client_secret=MICROSOFT_SECRET).start()
    google = GoogleStandIn(
        client_id="google-client.apps.googleusercontent.com", client_secret=GOOGLE_SECRET
    ).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        "MAILRAMP_DATABASE_URL": f"sqlite:///{directory / 'mailramp.db'}",
        "MAILRAMP_ENCRYPTION_KEYS": KEY,
        "MAILRAMP_PUBLIC_BASE_URL": base,
        "MAILRAMP_RUN_WORKER": "false",
        "MAILRAMP_MICROSOFT_CLIENT_ID": microsoft.client_id,
        "MAILRAMP_MICROSOFT_CLIENT_SECRET": MICROSOFT_SECRET,
        "MAILRAMP_MICROSOFT_AUTHORITY_URL": microsoft.origin,
        "MAILRAMP_GRAPH_URL": microsoft.graph_url,
        "MAILRAMP_GOOGLE_CLIENT_ID": google.client_id,
        "MAILRAMP_GOOGLE_CLIENT_SECRET": GOOGLE_SECRET,
        "MAILRAMP_GOOGLE_AUTH_URL": google.auth_url,
        "MAILRAMP_GOOGLE_TOKEN_URL": google.token_url,
        "MAILRAMP_GOOGLE_USERINFO_URL": google.userinfo_url,
    }
    settings = Settings(**{k.removeprefix("MAILRAMP_").lower(): v for k, v in environment.items()})
    try:
        with serving(port, cwd=directory, env=clean_environment(**environment)):
            world = World(base, directory, settings, microsoft, google, [], [])
            yield world
            for client in world.clients:
                client.close()
    finally:
        microsoft.stop()
        google.stop()


class Browser:
    """A signed-in browser: session cookie plus the CSRF header a page script would add."""

    def __init__(self, world: World, login_id: str) -> None:
        self.world = world
        self.client = httpx.Client(base_url=world.base)
        world.clients.append(self.client)
        response = self.client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Linker", "login_id": login_id, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        self.csrf = response.json()["csrf_token"]
        self.user_id = response.json()["user"]["user_id"]

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} | kwargs.pop("headers", {})
        response = self.client.request(method, path, headers=headers, **kwargs)
        self.world.seen.append(response.text)
        return response

    def start(self, provider: str, email: str) -> str:
        response = self.call(
            "POST", f"/api/v1/mailboxes/oauth/{provider}/start", json={"login_hint": email}
        )
        assert response.status_code == 200, response.text
        url: str = response.json()["authorize_url"]
        return url

    def consent(self, authorize_url: str) -> str:
        """The provider's sign-in and consent; returns where it sends the browser back."""
        response = httpx.get(authorize_url)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert "error=" not in location, location
        return location

    def come_back(self, location: str, *, json: bool = True) -> httpx.Response:
        headers = {"Accept": "application/json"} if json else {}
        return self.call("GET", location, headers=headers)

    def link(self, provider: str, email: str) -> httpx.Response:
        location = self.consent(self.start(provider, email))
        prefix = f"{self.world.base}/api/v1/mailboxes/oauth/{provider}/callback?"
        assert location.startswith(prefix)
        return self.come_back(location)

    def mailboxes(self) -> list[dict[str, Any]]:
        response = self.call("GET", "/api/v1/mailboxes")
        assert response.status_code == 200
        boxes: list[dict[str, Any]] = response.json()
        return boxes


def _assert_no_token_leaked(world: World) -> None:
    stand_ins = (world.microsoft, world.google)
    tokens = {t for s in stand_ins for t in (*s.access_tokens, *s.refresh_tokens)}
    # Authorization codes do appear in the access log's callback line: each is single use
    # and already redeemed when the line is written.
    log = (world.directory / "serve.log").read_text()
    for text in [*world.seen, log]:
        for token in tokens:
            assert token not in text
        assert MICROSOFT_SECRET not in text and GOOGLE_SECRET not in text


@pytest.mark.parametrize(
    ("provider", "email"), [("outlook", "Ada@Contoso.example"), ("gmail", "grace@gmail.example")]
)
def test_linking_end_to_end_stores_tokens_and_profile(
    world: World, provider: str, email: str
) -> None:
    browser = Browser(world, f"link-{provider}@example.com")
    authorize_url = browser.start(provider, email)
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{world.base}/api/v1/mailboxes/oauth/{provider}/callback"]
    # The verifier never reaches the browser: not in the URL, and the state is opaque.
    assert len(query["state"][0]) > 100
    response = browser.come_back(browser.consent(authorize_url))
    assert response.status_code == 200, response.text
    mailbox = response.json()
    assert mailbox["email"] == email.lower()
    assert mailbox["provider"] == provider
    assert mailbox["status"] == "active" and mailbox["is_primary"] is True
    assert mailbox["has_access_token"] is True and mailbox["has_refresh_token"] is True
    expires_at = datetime.fromisoformat(mailbox["token_expires_at"])
    assert timedelta(minutes=55) < expires_at - datetime.now(UTC) < timedelta(minutes=61)
    profile_email = "mail" if provider == "outlook" else "email"
    assert mailbox["user_profile"][profile_email] == email  # as the provider has it
    assert [box["mailbox_id"] for box in browser.mailboxes()] == [mailbox["mailbox_id"]]
    # The token request carried the PKCE verifier whose challenge was in the authorize URL.
    redeem = world.stand_in(provider).token_requests[-1]
    assert s256(redeem["code_verifier"]) == query["code_challenge"][0]
    _assert_no_token_leaked(world)


@pytest.mark.parametrize("provider", ["outlook", "gmail"])
def test_linking_the_same_address_again_updates_the_mailbox(world: World, provider: str) -> None:
    browser = Browser(world, f"again-{provider}@example.com")
    email = f"again-{provider}@mail.example"
    first = browser.link(provider, email).json()
    paused = browser.call("POST", f"/api/v1/mailboxes/{first['mailbox_id']}/pause")
    assert paused.json()["status"] == "inactive"
    world.stand_in(provider).profiles[email] = {"displayName": "Renamed", "name": "Renamed"}
    second = browser.link(provider, email)
    assert second.status_code == 200, second.text
    assert second.json()["mailbox_id"] == first["mailbox_id"]
    assert second.json()["status"] == "active"
    assert second.json()["user_profile"].get("displayName", "Renamed") == "Renamed"
    # Compared as moments: "…:36Z" and "…:36.116000Z" do not sort as text.
    assert datetime.fromisoformat(second.json()["updated_at"]) > datetime.fromisoformat(
        first["updated_at"]
    )
    assert len(browser.mailboxes()) == 1


def test_a_browser_callback_redirects_to_the_dashboard(world: World) -> None:
    browser = Browser(world, "redirect@example.com")
    location = browser.consent(browser.start("outlook", "redirect@contoso.example"))
    response = browser.come_back(location, json=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/mailboxes"
    assert [box["email"] for box in browser.mailboxes()] == ["redirect@contoso.example"]


def test_a_state_is_used_once(world: World) -> None:
    browser = Browser(world, "replay@example.com")
    location = browser.consent(browser.start("gmail", "replay@gmail.example"))
    assert browser.come_back(location).status_code == 200
    again = browser.come_back(location)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "oauth_state_invalid"
    assert "already used" in again.json()["error"]["message"]


def _callback(browser: Browser, provider: str, **query: str) -> httpx.Response:
    return browser.call(
        "GET",
        f"/api/v1/mailboxes/oauth/{provider}/callback?{urlencode(query)}",
        headers={"Accept": "application/json"},
    )


def test_forged_expired_and_foreign_states_are_refused_and_nothing_is_stored(
    world: World,
) -> None:
    alice = Browser(world, "alice-state@example.com")
    mallory = Browser(world, "mallory-state@example.com")
    # A code for Alice's account, obtained by Mallory's start: then replayed in Alice's
    # browser with Mallory's state (login CSRF), and Alice's state in Mallory's.
    location = alice.consent(alice.start("outlook", "alice@contoso.example"))
    code = parse_qs(urlsplit(location).query)["code"][0]
    alice_state = parse_qs(urlsplit(location).query)["state"][0]

    foreign = mallory.come_back(location)
    assert foreign.status_code == 400
    assert "another user" in foreign.json()["error"]["message"]

    forged_with_other_key = StateSealer(SecretBox([generate_key()])).seal(
        LinkState.new("outlook", alice.user_id, issued_at=datetime.now(UTC))
    )
    old = StateSealer(SecretBox([KEY])).seal(
        LinkState.new("outlook", alice.user_id, issued_at=datetime.now(UTC) - timedelta(minutes=11))
    )
    for state, words in [
        ("not-a-state", "not issued by this server"),
        (forged_with_other_key, "not issued by this server"),
        (alice_state[:-4] + "AAAA", "not issued by this server"),
        (old, "expired"),
    ]:
        response = _callback(alice, "outlook", code=code, state=state)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "oauth_state_invalid"
        assert words in response.json()["error"]["message"]
    # A state issued for Outlook does not finish a Gmail link.
    wrong_provider = _callback(alice, "gmail", code=code, state=alice_state)
    assert wrong_provider.status_code == 400
    missing = _callback(alice, "outlook", code=code)
    assert missing.status_code == 400
    assert alice.mailboxes() == [] and mallory.mailboxes() == []


def test_a_verifier_that_does_not_match_the_challenge_is_refused(world: World) -> None:
    browser = Browser(world, "pkce@example.com")
    authorize_url = browser.start("outlook", "pkce@contoso.example")
    # The challenge the provider sees is not the one of mailramp's verifier.
    parts = urlsplit(authorize_url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["code_challenge"] = s256("an attacker's verifier" * 3)
    location = browser.consent(f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}")
    response = browser.come_back(location)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "oauth_refused" and error["provider_error"] == "invalid_grant"
    assert "AADSTS501481" in error["message"] and "start linking again" in error["message"]
    assert browser.mailboxes() == []


def test_a_refused_consent_is_reported(world: World) -> None:
    browser = Browser(world, "denied@example.com")
    authorize_url = browser.start("gmail", "")
    location = httpx.get(authorize_url).headers["location"]
    response = browser.come_back(location)
    assert response.status_code == 400
    assert response.json()["error"]["provider_error"] == "access_denied"
    assert "did not authorize" in response.json()["error"]["message"]
    assert browser.mailboxes() == []


def test_unknown_provider_is_a_validation_error(world: World) -> None:
    browser = Browser(world, "smtp-oauth@example.com")
    response = browser.call("POST", "/api/v1/mailboxes/oauth/smtp/start")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "provider"


def test_a_provider_without_client_id_answers_409(tmp_path: Path) -> None:
    port = free_port()
    environment = clean_environment(MAILRAMP_RUN_WORKER="false", MAILRAMP_ENCRYPTION_KEYS=KEY)
    with serving(port, cwd=tmp_path, env=environment):
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
        with client:
            signup = client.post(
                "/api/v1/auth/signup",
                json={"user_name": "N", "login_id": "n@example.com", "password": PASSWORD},
            )
            headers = {"X-CSRF-Token": signup.json()["csrf_token"]}
            for provider, setting in [
                ("outlook", "MAILRAMP_MICROSOFT_CLIENT_ID"),
                ("gmail", "MAILRAMP_GOOGLE_CLIENT_ID"),
            ]:
                response = client.post(f"/api/v1/mailboxes/oauth/{provider}/start", headers=headers)
                assert response.status_code == 409
                assert response.json()["error"]["code"] == "oauth_not_configured"
                assert setting in response.json()["error"]["message"]


@pytest.mark.parametrize("provider", ["outlook", "gmail"])
async def test_refresh_stores_new_tokens_and_a_revoked_grant_asks_to_reconnect(
    world: World, provider: str
) -> None:
    browser = Browser(world, f"refresh-{provider}@example.com")
    email = f"refresh-{provider}@mail.example"
    linked = browser.link(provider, email).json()
    stand_in = world.stand_in(provider)
    first_access = stand_in.latest_access_token(email)
    runtime = await open_runtime(world.settings)
    try:
        linking = OAuthLinking(
            runtime.mailboxes,
            runtime.secrets,
            endpoints_from_settings(world.settings),
            public_base_url=world.settings.public_base_url,
        )
        mailbox = await runtime.mailboxes.get_mailbox(browser.user_id, linked["mailbox_id"])
        before = await runtime.mailboxes.credentials(browser.user_id, mailbox.id)
        assert before.access_token is not None and before.refresh_token is not None
        assert before.access_token.get_secret_value() == first_access

        await linking.refresh(mailbox, before)
        after = await runtime.mailboxes.credentials(browser.user_id, mailbox.id)
        assert after.access_token is not None and after.refresh_token is not None
        new_access = after.access_token.get_secret_value()
        assert new_access != first_access and new_access == stand_in.latest_access_token(email)
        # Microsoft rotates the refresh token; Google keeps the one it issued.
        old_refresh, new_refresh = (
            before.refresh_token.get_secret_value(),
            after.refresh_token.get_secret_value(),
        )
        assert (old_refresh != new_refresh) is (provider == "outlook")
        assert stand_in.token_requests[-1]["grant_type"] == "refresh_token"

        stand_in.revoke(email)
        with pytest.raises(OAuthGrantRevoked, match="reconnect this mailbox"):
            await linking.refresh(mailbox, after)
    finally:
        await runtime.close()
    shown = browser.call("GET", f"/api/v1/mailboxes/{linked['mailbox_id']}").json()
    assert shown["status"] == "error" and "reconnect this mailbox" in shown["status_reason"]
    # Reconnecting brings the same mailbox back.
    again = browser.link(provider, email).json()
    assert again["mailbox_id"] == linked["mailbox_id"] and again["status"] == "active"
    _assert_no_token_leaked(world)


def test_the_dashboard_connects_outlook_through_the_consent_page(world: World) -> None:
    browser = Browser(world, "dashboard-oauth@example.com")
    page = browser.call("GET", "/mailboxes")
    assert 'href="/mailboxes/connect/outlook"' in page.text
    assert 'href="/mailboxes/connect/gmail"' in page.text
    started = browser.call("GET", "/mailboxes/connect/outlook")
    assert started.status_code == 303
    authorize = started.headers["location"]
    assert authorize.startswith(world.microsoft.origin) and "code_challenge=" in authorize
    location = browser.consent(authorize + "&login_hint=dash%40contoso.example")
    assert browser.come_back(location, json=False).headers["location"] == "/mailboxes"
    listed = browser.call("GET", "/mailboxes").text
    assert "dash@contoso.example" in listed and "outlook" in listed
    unknown = browser.call("GET", "/mailboxes/connect/yahoo")
    assert unknown.status_code == 422 and "provider" in unknown.text


def test_test_connection_of_an_outlook_mailbox_and_of_a_revoked_one(world: World) -> None:
    """POST /mailboxes/{id}/test on an OAuth mailbox asks Graph's /me with the stored token;
    once the user revoked the app, the refresh fails and the answer says what to do."""
    browser = Browser(world, "check-outlook@example.com")
    email = "check@contoso.example"
    mailbox_id = browser.link("outlook", email).json()["mailbox_id"]
    answer = browser.call("POST", f"/api/v1/mailboxes/{mailbox_id}/test")
    assert answer.status_code == 200 and answer.json() == {"graph": {"ok": True}}

    world.microsoft.revoke(email)
    failed = browser.call("POST", f"/api/v1/mailboxes/{mailbox_id}/test").json()
    assert failed["graph"]["ok"] is False
    assert "invalid_grant" in failed["graph"]["error"]
    assert failed["graph"]["error"].endswith("reconnect this mailbox to keep sending from it")
    mailbox = browser.call("GET", f"/api/v1/mailboxes/{mailbox_id}").json()
    assert mailbox["status"] == "error" and "reconnect this mailbox" in mailbox["status_reason"]
    _assert_no_token_leaked(world)
