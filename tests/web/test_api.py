"""The JSON API through the HTTP stack (`mailramp serve` on loopback): sign-in, CSRF, API
keys, mailboxes, campaigns, the error shape, and user isolation."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from mailramp.config import Settings
from tests.support.clock import next_monday, system_now
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.smtp import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

PASSWORD = "correct horse battery staple"
CANARY_PASSWORD = "smtp-CANARY-password-7f3a"
CANARY_TOKEN = "oauth-CANARY-token-91bc"
# The server reads the system clock: campaigns start on a Monday some weeks from it.
START = next_monday(system_now(), weeks=4)


_OPEN: list[httpx.Client] = []
DIRECTORIES: list[Path] = []


def _client(**options: Any) -> httpx.Client:
    """A client closed when the module's server stops (no socket left behind)."""
    client = httpx.Client(**options)
    _OPEN.append(client)
    return client


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("api")
    port = free_port()
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false", MAILRAMP_ALLOW_PRIVATE_HOSTS="true"
    )
    DIRECTORIES.append(directory)
    with serving(port, cwd=directory, env=environment):
        yield f"http://127.0.0.1:{port}"
        while _OPEN:
            _OPEN.pop().close()


def _server_settings() -> Settings:
    """Settings that open the module's server's database from this process."""
    return Settings(
        database_url=f"sqlite:///{DIRECTORIES[0] / 'mailramp.db'}",
        encryption_key_file=DIRECTORIES[0] / "mailramp.key",
    )


class Browser:
    """A signed-in browser: session cookie plus the CSRF header a page script would add."""

    def __init__(self, base: str, login_id: str, seen: list[str]) -> None:
        self.client = _client(base_url=base)
        self.seen = seen
        response = self.client.post(
            "/api/v1/auth/signup",
            json={"user_name": login_id.title(), "login_id": login_id, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        self.csrf = response.json()["csrf_token"]
        self.user = response.json()["user"]

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} | kwargs.pop("headers", {})
        response = self.client.request(method, path, headers=headers, **kwargs)
        self.seen.append(response.text)
        return response


@pytest.fixture(scope="module")
def seen() -> list[str]:
    return []


def _smtp_mailbox(email: str) -> dict[str, Any]:
    return {
        "email": email,
        "provider": "smtp",
        "smtp_host": "smtp.example.com",
        "password": CANARY_PASSWORD,
        "imap_host": "imap.example.com",
    }


def test_sign_up_sets_safe_cookies_and_me_answers(base: str, seen: list[str]) -> None:
    client = _client(base_url=base)
    response = client.post(
        "/api/v1/auth/signup",
        json={"user_name": "Cookie", "login_id": "cookie@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("mailramp_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session
    assert "Secure" not in session  # the public URL is http here
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["login_id"] == "cookie@example.com"
    assert "password" not in me.json() and "failed_logins" not in me.json()
    assert httpx.get(f"{base}/api/v1/me").status_code == 401


def test_cookie_requests_that_change_things_need_the_csrf_header(
    base: str, seen: list[str]
) -> None:
    browser = Browser(base, "csrf@example.com", seen)
    no_header = browser.client.post("/api/v1/api-keys", json={"name": "x"})
    assert no_header.status_code == 403
    assert no_header.json() == {
        "error": {"code": "forbidden", "message": "missing or wrong X-CSRF-Token header"}
    }
    wrong = browser.client.post(
        "/api/v1/api-keys", json={"name": "x"}, headers={"X-CSRF-Token": "guess"}
    )
    assert wrong.status_code == 403
    assert browser.call("POST", "/api/v1/api-keys", json={"name": "x"}).status_code == 201


def test_login_errors_are_generic_and_throttled(base: str, seen: list[str]) -> None:
    Browser(base, "throttle@example.com", seen)
    client = _client(base_url=base)
    unknown = client.post(
        "/api/v1/auth/login",
        json={"login_id": "nobody@example.com", "password": "whatever-password"},
    )
    wrong = client.post(
        "/api/v1/auth/login",
        json={"login_id": "throttle@example.com", "password": "wrong-password!"},
    )
    assert unknown.status_code == wrong.status_code == 401
    assert (
        unknown.json()
        == wrong.json()
        == {"error": {"code": "unauthenticated", "message": "invalid login or password"}}
    )
    for _ in range(5):
        client.post(
            "/api/v1/auth/login",
            json={"login_id": "throttle@example.com", "password": "wrong-password!"},
        )
    locked = client.post(
        "/api/v1/auth/login", json={"login_id": "throttle@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 401 and locked.json() == wrong.json()


def test_password_change_ends_other_sessions_and_logout_ends_this_one(
    base: str, seen: list[str]
) -> None:
    first = Browser(base, "pw@example.com", seen)
    second = _client(base_url=base)
    assert (
        second.post(
            "/api/v1/auth/login", json={"login_id": "pw@example.com", "password": PASSWORD}
        ).status_code
        == 200
    )
    assert second.get("/api/v1/me").status_code == 200
    changed = first.call(
        "POST",
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "an even better passphrase"},
    )
    assert changed.status_code == 200
    assert changed.json() == {"ended_sessions": 1, "revoked_api_keys": 0}
    assert second.get("/api/v1/me").status_code == 401
    assert first.call("GET", "/api/v1/me").status_code == 200
    bad = first.call(
        "POST",
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": "another passphrase!"},
    )
    assert bad.status_code == 401
    assert first.call("POST", "/api/v1/auth/logout").status_code == 204
    assert first.call("GET", "/api/v1/me").status_code == 401


def test_api_keys_are_shown_once_and_revocable(base: str, seen: list[str]) -> None:
    browser = Browser(base, "keys@example.com", seen)
    created = browser.call("POST", "/api/v1/api-keys", json={"name": "deploy script"})
    key = created.json()["key"]
    assert key.startswith("mr_") and created.json()["prefix"] == key[:11]
    listed = browser.call("GET", "/api/v1/api-keys").json()
    assert [k["name"] for k in listed] == ["deploy script"] and "key" not in listed[0]
    assert "key_hash" not in listed[0]
    script = _client(base_url=base, headers={"Authorization": f"Bearer {key}"})
    assert script.get("/api/v1/me").json()["login_id"] == "keys@example.com"
    # A key needs no CSRF header: it is not sent by browsers on their own.
    assert (
        script.post("/api/v1/mailboxes", json=_smtp_mailbox("script@acme.com")).status_code == 201
    )
    assert browser.call("DELETE", f"/api/v1/api-keys/{listed[0]['_id']}").status_code == 204
    assert script.get("/api/v1/me").status_code == 401
    assert (
        httpx.get(f"{base}/api/v1/me", headers={"Authorization": "Bearer mr_forged"}).status_code
        == 401
    )
    assert httpx.get(f"{base}/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_mailboxes_round_trip_without_ever_returning_secrets(base: str, seen: list[str]) -> None:
    browser = Browser(base, "boxes@example.com", seen)
    linked = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("ann@acme.com"))
    assert linked.status_code == 201
    box = linked.json()
    assert box["has_password"] is True and "password" not in box
    assert box["is_primary"] is True and box["mailbox_id"] == box["_id"]
    oauth = browser.call(
        "POST",
        "/api/v1/mailboxes",
        json={"email": "ann@gmail.com", "provider": "gmail", "access_token": CANARY_TOKEN},
    )
    second = oauth.json()
    assert second["has_access_token"] is True and second["is_primary"] is False
    assert browser.call("POST", f"/api/v1/mailboxes/{second['_id']}/primary").json()["is_primary"]
    paused = browser.call(
        "POST", f"/api/v1/mailboxes/{box['_id']}/pause", json={"reason": "warm-up"}
    )
    assert paused.json()["status"] == "inactive"
    # Activation tests the servers first: smtp.example.com does not answer, so it stays off.
    refused = browser.call("POST", f"/api/v1/mailboxes/{box['_id']}/activate")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("mailbox_test_failed", "status")
    assert (
        "not activated: the test failed (SMTP: the host 'smtp.example.com' does not exist"
        in (error["message"])
    )
    assert browser.call("GET", f"/api/v1/mailboxes/{box['_id']}").json()["status"] == "inactive"
    patched = browser.call("PATCH", f"/api/v1/mailboxes/{box['_id']}", json={"daily_limit": 80})
    assert patched.json()["daily_limit"] == 80
    listed = browser.call("GET", "/api/v1/mailboxes").json()
    assert [b["email"] for b in listed] == ["ann@gmail.com", "ann@acme.com"]
    unlinked = browser.call("DELETE", f"/api/v1/mailboxes/{second['_id']}")
    assert unlinked.status_code == 200 and unlinked.json()["has_access_token"] is False
    bad = browser.call("POST", "/api/v1/mailboxes", json={"email": "x@acme.com", "provider": "aol"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "provider" and bad.json()["error"]["code"] == "invalid"
    duplicate = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("ann@acme.com"))
    assert duplicate.status_code == 409 and duplicate.json()["error"]["field"] == "email"


CSV = "email,first_name\nalice@example.com,Alice\nbad-address,X\nbob@example.com,Bob\n"


def _fields(mailbox_id: str) -> dict[str, Any]:
    return {
        "mailbox_id": mailbox_id,
        "campaign_name": "Q1",
        "subject": "Hi {{first_name}}",
        "message": "Hello",
        "duration": 48,
        "start_time": START.isoformat(),
    }


def _campaign(browser: Browser, mailbox_id: str, **fields: Any) -> dict[str, Any]:
    body = _fields(mailbox_id) | fields
    response = browser.call("POST", "/api/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_campaign_life_through_the_api(base: str, seen: list[str]) -> None:
    browser = Browser(base, "campaigns@example.com", seen)
    box = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("c@acme.com")).json()
    campaign = _campaign(browser, box["_id"])
    cid = campaign["campaign_id"]
    assert datetime.fromisoformat(campaign["end_time"]) == START + timedelta(hours=48)
    uploaded = browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={"file": ("people.csv", CSV.encode(), "text/csv")},
    )
    assert uploaded.status_code == 200, uploaded.text
    report = uploaded.json()
    assert (report["accepted"], report["invalid_count"], report["total_recipients"]) == (2, 1, 2)
    assert report["invalid"][0]["row"] == 3
    not_csv = browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={"file": ("x.png", b"\x89PNG\r\n\x1a\n\x00", "image/png")},
    )
    assert not_csv.status_code == 422 and not_csv.json()["error"]["code"] == "invalid_file"
    patched = browser.call(
        "PATCH", f"/api/v1/campaigns/{cid}", json={"subject": "Hello {{first_name}}"}
    )
    assert patched.json()["subject"] == "Hello {{first_name}}"
    assert browser.call("POST", f"/api/v1/campaigns/{cid}/pause").json()["status"] == "paused"
    assert browser.call("POST", f"/api/v1/campaigns/{cid}/resume").json()["status"] == "scheduled"
    metrics = browser.call("GET", f"/api/v1/campaigns/{cid}/metrics").json()
    assert metrics["total_sent"] == 0 and "human_open_rate" in metrics
    series = browser.call("GET", f"/api/v1/campaigns/{cid}/series").json()
    assert [(row["type"], row["count"]) for row in series] == [("queued", 2)]  # nothing sent
    assert browser.call("POST", f"/api/v1/campaigns/{cid}/resend-uncertain").json() == {"queued": 0}
    second = _campaign(browser, box["_id"], campaign_name="Q2")
    page = browser.call("GET", "/api/v1/campaigns", params={"limit": 1}).json()
    assert page["total"] == 2 and [c["campaign_id"] for c in page["items"]] == [
        second["campaign_id"]
    ]
    scheduled = browser.call("GET", "/api/v1/campaigns", params={"status": "scheduled"}).json()
    assert scheduled["total"] == 2
    # Launch: the window moves to begin now, same length; then the campaign is active.
    launched = browser.call("POST", f"/api/v1/campaigns/{second['campaign_id']}/launch")
    assert launched.status_code == 200, launched.text
    body = launched.json()
    assert body["status"] == "active" and datetime.fromisoformat(body["start_time"]) < START
    hours = (
        datetime.fromisoformat(body["end_time"]) - datetime.fromisoformat(body["start_time"])
    ).total_seconds() / 3600
    assert hours == second["duration"]
    assert browser.call("POST", f"/api/v1/campaigns/{cid}/cancel").json()["status"] == "cancelled"
    relaunch = browser.call("POST", f"/api/v1/campaigns/{cid}/launch")
    assert relaunch.status_code == 409 and relaunch.json()["error"]["code"] == "invalid_transition"
    illegal = browser.call("POST", f"/api/v1/campaigns/{cid}/pause")
    assert illegal.status_code == 409 and illegal.json()["error"]["code"] == "invalid_transition"
    bad = browser.call(
        "POST",
        "/api/v1/campaigns",
        json={
            "mailbox_id": box["_id"],
            "campaign_name": "x",
            "subject": "x",
            "message": "x",
            "duration": 0,
            "start_time": START.isoformat(),
        },
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "duration"
    naive = browser.call(
        "POST",
        "/api/v1/campaigns",
        json={
            "mailbox_id": box["_id"],
            "campaign_name": "x",
            "subject": "x",
            "message": "x",
            "duration": 1,
            "start_time": START.replace(tzinfo=None).isoformat(),  # naive
        },
    )
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "start_time"
    unknown_status = browser.call("GET", "/api/v1/campaigns", params={"status": "running"})
    assert unknown_status.status_code == 422 and unknown_status.json()["error"]["field"] == "status"


def test_user_b_gets_404_on_every_object_of_user_a(base: str, seen: list[str]) -> None:
    alice = Browser(base, "alice@example.com", seen)
    bob = Browser(base, "bob@example.com", seen)
    box = alice.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("a@acme.com")).json()
    key = alice.call("POST", "/api/v1/api-keys", json={"name": "a"}).json()
    campaign = _campaign(alice, box["_id"])
    mid, cid = box["_id"], campaign["campaign_id"]
    attempts = [
        ("GET", f"/api/v1/mailboxes/{mid}", {}),
        ("PATCH", f"/api/v1/mailboxes/{mid}", {"json": {"daily_limit": 1}}),
        ("POST", f"/api/v1/mailboxes/{mid}/primary", {}),
        ("POST", f"/api/v1/mailboxes/{mid}/pause", {}),
        ("POST", f"/api/v1/mailboxes/{mid}/activate", {}),
        ("DELETE", f"/api/v1/mailboxes/{mid}", {}),
        ("GET", f"/api/v1/campaigns/{cid}", {}),
        ("PATCH", f"/api/v1/campaigns/{cid}", {"json": {"subject": "pwned"}}),
        ("POST", f"/api/v1/campaigns/{cid}/launch", {}),
        ("POST", f"/api/v1/campaigns/{cid}/pause", {}),
        ("POST", f"/api/v1/campaigns/{cid}/resume", {}),
        ("POST", f"/api/v1/campaigns/{cid}/cancel", {}),
        ("POST", f"/api/v1/campaigns/{cid}/resend-uncertain", {}),
        (
            "POST",
            f"/api/v1/campaigns/{cid}/recipients",
            {"files": {"file": ("p.csv", b"email\nx@example.com\n", "text/csv")}},
        ),
        ("GET", f"/api/v1/campaigns/{cid}/metrics", {}),
        ("GET", f"/api/v1/campaigns/{cid}/series", {}),
        ("DELETE", f"/api/v1/api-keys/{key['_id']}", {}),
        ("POST", f"/api/v1/mailboxes/{mid}/test", {}),
        ("GET", f"/api/v1/campaigns/{cid}/recipients", {}),
        ("GET", f"/api/v1/campaigns/{cid}/recipients/{mid}/events", {}),
        ("GET", f"/api/v1/campaigns/{cid}/export.csv", {}),
    ]
    for method, path, options in attempts:
        response = bob.call(method, path, **options)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (
        bob.call(
            "POST",
            "/api/v1/campaigns",
            json={
                "mailbox_id": mid,
                "campaign_name": "x",
                "subject": "x",
                "message": "x",
                "duration": 1,
                "start_time": START.isoformat(),
            },
        ).status_code
        == 404
    )
    assert alice.call("GET", f"/api/v1/mailboxes/{mid}").json() == box | {"has_password": True}
    unchanged = alice.call("GET", f"/api/v1/campaigns/{cid}").json()
    assert unchanged == campaign
    assert alice.call("GET", "/api/v1/api-keys").json()[0]["revoked_at"] is None
    assert bob.call("GET", "/api/v1/mailboxes").json() == []
    assert bob.call("GET", "/api/v1/campaigns").json()["total"] == 0


def test_errors_have_one_shape_and_no_stack_traces(base: str, seen: list[str]) -> None:
    browser = Browser(base, "errors@example.com", seen)
    missing = browser.call("GET", "/api/v1/campaigns/8f14e45f-ceea-467f-a0e6-1b0e1f6b0e33")
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"code", "message"}
    malformed = browser.call("GET", "/api/v1/mailboxes/not-an-id")
    assert malformed.status_code == 422 and malformed.json()["error"]["field"] == "mailbox_id"
    no_route = browser.call("GET", "/api/v1/nothing-here")
    assert no_route.status_code == 404 and no_route.json()["error"]["code"] == "not_found"
    broken_json = browser.call(
        "POST",
        "/api/v1/mailboxes",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert broken_json.status_code == 422 and "error" in broken_json.json()
    assert "Traceback" not in broken_json.text


def test_test_connection_logs_in_without_sending(base: str, seen: list[str], dovecot: Any) -> None:
    from tests.support.smtp import SmtpServer

    smtp = SmtpServer({"t@acme.com": "imap-password"}).start()
    try:
        browser = Browser(base, "tester@example.com", seen)
        good = browser.call(
            "POST",
            "/api/v1/mailboxes",
            json={
                "email": "t@acme.com",
                "provider": "smtp",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "smtp_security": "plain",
                "password": "imap-password",
                "imap_host": "127.0.0.1",
                "imap_port": dovecot.port,
                "imap_security": "plain",
                "imap_username": "ann@acme.com",
            },
        ).json()
        result = browser.call("POST", f"/api/v1/mailboxes/{good['_id']}/test").json()
        assert result == {"smtp": {"ok": True}, "imap": {"ok": True}}
        assert smtp.inbox.messages == [] and smtp.inbox.logins == ["t@acme.com"]
        bad = browser.call(
            "POST",
            "/api/v1/mailboxes",
            json={
                "email": "u@acme.com",
                "provider": "smtp",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "smtp_security": "plain",
                "password": "wrong",
            },
        ).json()
        failed = browser.call("POST", f"/api/v1/mailboxes/{bad['_id']}/test").json()
        assert failed["smtp"]["ok"] is False and "535" in failed["smtp"]["error"]
        assert "imap" not in failed
    finally:
        smtp.stop()


def test_recipients_listing_and_a_spreadsheet_safe_export(base: str, seen: list[str]) -> None:
    browser = Browser(base, "export@example.com", seen)
    box = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("e@acme.com")).json()
    cid = _campaign(browser, box["_id"])["campaign_id"]
    csv_text = (
        'email,first_name,note\nann@example.com,Ann,"=HYPERLINK(""http://x"",""y"")"\n'
        "ben@example.com,Ben,+1 555\n"
    )
    browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={"file": ("p.csv", csv_text.encode(), "text/csv")},
    )
    page = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients", params={"limit": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    pending = browser.call(
        "GET", f"/api/v1/campaigns/{cid}/recipients", params={"status": "pending"}
    )
    assert pending.json()["total"] == 2
    bad_status = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients", params={"status": "x"})
    assert bad_status.status_code == 422 and bad_status.json()["error"]["field"] == "status"
    record = page["items"][0]
    events = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients/{record['_id']}/events")
    assert events.status_code == 200
    assert [(e["type"], e["record_id"]) for e in events.json()] == [("queued", record["_id"])]
    export = browser.call("GET", f"/api/v1/campaigns/{cid}/export.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = export.text.splitlines()
    assert lines[0].startswith("recipient_email,status,") and lines[0].endswith("first_name,note")
    assert "'=HYPERLINK" in export.text and "'+1 555" in export.text
    assert ",=HYPERLINK" not in export.text

    # A later import with another column: every recipient's columns are in the export.
    more = browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={
            "file": ("more.csv", b"email,first_name,company\ncy@example.com,Cy,Acme\n", "text/csv")
        },
    )
    assert more.status_code == 200, more.text
    rows = list(
        csv.DictReader(io.StringIO(browser.call("GET", f"/api/v1/campaigns/{cid}/export.csv").text))
    )
    assert {r["recipient_email"]: r["company"] for r in rows} == {
        "ann@example.com": "",
        "ben@example.com": "",
        "cy@example.com": "Acme",
    }
    assert all("first_name" in r and "note" in r for r in rows)


def test_a_person_is_stopped_or_marked_replied_through_the_api(base: str, seen: list[str]) -> None:
    browser = Browser(base, "by-hand@example.com", seen)
    box = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("h@acme.com")).json()
    cid = _campaign(browser, box["_id"])["campaign_id"]
    browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={"file": ("p.csv", b"email,first_name\nann@example.com,Ann\n", "text/csv")},
    )
    (ann,) = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients").json()["items"]
    (day,) = browser.call("GET", f"/api/v1/campaigns/{cid}/plan").json()
    assert (day["mailbox_id"], day["first_emails"], day["follow_ups"]) == (box["_id"], 1, 0)
    not_sent = browser.call("POST", f"/api/v1/campaigns/{cid}/recipients/{ann['_id']}/replied")
    assert not_sent.status_code == 409
    assert not_sent.json()["error"]["field"] == "record_id"
    stopped = browser.call("POST", f"/api/v1/campaigns/{cid}/recipients/{ann['_id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    events = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients/{ann['_id']}/events")
    assert [(e["type"], e["details"]) for e in events.json()] == [
        ("queued", {}),
        ("stopped", {"source": "manual"}),
    ]
    # The account's event log, read by cursor.
    log = browser.call("GET", "/api/v1/events").json()
    assert [(e["seq"], e["type"], e["recipient_email"]) for e in log["events"]] == [
        (1, "queued", "ann@example.com"),
        (2, "stopped", "ann@example.com"),
    ]
    assert log["next_after"] == 2
    assert browser.call("GET", "/api/v1/events?after=2").json() == {"events": [], "next_after": 2}
    stops = browser.call("GET", f"/api/v1/events?kind=stopped&campaign_id={cid}").json()
    assert [e["seq"] for e in stops["events"]] == [2]
    unknown = browser.call("GET", "/api/v1/events?kind=teleported")
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "kind.0"
    other = Browser(base, "by-hand-other@example.com", seen)
    assert (
        other.call("POST", f"/api/v1/campaigns/{cid}/recipients/{ann['_id']}/stop").status_code
        == 404
    )
    assert other.call("GET", "/api/v1/events").json() == {"events": [], "next_after": 0}
    assert other.call("GET", f"/api/v1/events?campaign_id={cid}").status_code == 404


def test_lead_statuses_and_labels_through_the_api(base: str, seen: list[str]) -> None:
    browser = Browser(base, "leads@example.com", seen)
    box = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("l@acme.com")).json()
    cid = _campaign(browser, box["_id"])["campaign_id"]
    imported = browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={
            "file": (
                "p.csv",
                b"email,first_name\nann@example.com,Ann\nben@example.com,Ben\n",
                "text/csv",
            )
        },
    )
    assert imported.status_code == 200, imported.text
    ann, ben = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients").json()["items"]
    added = browser.call("POST", "/api/v1/lead-labels", json={"name": "Needs pricing"})
    assert added.status_code == 201 and added.json()["name"] == "Needs pricing"
    again = browser.call("POST", "/api/v1/lead-labels", json={"name": "NEEDS pricing"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
    choices = browser.call("GET", "/api/v1/lead-statuses").json()["statuses"]
    assert choices[0] == "interested" and choices[-1] == "Needs pricing" and len(choices) == 10

    def lead(record: dict[str, object], status: object) -> Any:
        return browser.call(
            "PUT",
            f"/api/v1/campaigns/{cid}/recipients/{record['_id']}/lead-status",
            json={"status": status},
        )

    interested = lead(ann, "interested")
    assert interested.status_code == 200
    assert (interested.json()["recipient_email"], interested.json()["lead_status"]) == (
        "ann@example.com",
        "interested",
    )
    assert lead(ben, "needs pricing").json()["lead_status"] == "Needs pricing"
    refused = lead(ben, "maybe later")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "status"
    held = browser.call("DELETE", "/api/v1/lead-labels/needs pricing")
    assert held.status_code == 409 and "1 people" in held.json()["error"]["message"]
    assert lead(ben, "do_not_contact").json()["lead_status"] == "do_not_contact"
    metrics = browser.call("GET", f"/api/v1/campaigns/{cid}/metrics").json()
    assert metrics["lead_statuses"] == {"interested": 1, "do_not_contact": 1}
    assert browser.call("DELETE", "/api/v1/lead-labels/needs pricing").status_code == 204
    # Do not contact: Ben is stopped and suppressed; the changes are in the event log.
    ben_now = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients?status=stopped").json()
    assert [r["recipient_email"] for r in ben_now["items"]] == ["ben@example.com"]
    log = browser.call("GET", "/api/v1/events?kind=lead_status").json()["events"]
    assert [(e["recipient_email"], e["details"]["to"]) for e in log] == [
        ("ann@example.com", "interested"),
        ("ben@example.com", "Needs pricing"),
        ("ben@example.com", "do_not_contact"),
    ]
    other = Browser(base, "leads-other@example.com", seen)
    path = f"/api/v1/campaigns/{cid}/recipients/{ann['_id']}/lead-status"
    assert other.call("PUT", path, json={"status": "won"}).status_code == 404
    assert other.call("GET", "/api/v1/lead-statuses").json()["statuses"][-1] == "do_not_contact"


def test_webhook_endpoints_through_the_api(base: str, seen: list[str]) -> None:
    receiver = WebhookReceiver().start()
    try:
        browser = Browser(base, "hooks@example.com", seen)
        made = browser.call(
            "POST",
            "/api/v1/webhooks",
            json={"url": receiver.url, "kinds": ["lead_status", "reply"], "description": "CRM"},
        )
        assert made.status_code == 201, made.text
        endpoint = made.json()
        secret = endpoint.pop("secret")
        assert secret.startswith("whsec_") and endpoint["kinds"] == ["reply", "lead_status"]
        eid = endpoint["_id"]
        listed = browser.call("GET", "/api/v1/webhooks").json()
        assert listed == [endpoint]  # never the secret again
        assert "secret" not in browser.call("GET", f"/api/v1/webhooks/{eid}").json()

        tested = browser.call("POST", f"/api/v1/webhooks/{eid}/test").json()
        assert (tested["status_code"], tested["manual"]) == (200, True)
        (arrived,) = receiver.take()
        assert Webhook(secret).verify(arrived.body, arrived.headers)["type"] == "webhook.test"
        (message,) = browser.call("GET", f"/api/v1/webhooks/{eid}/messages").json()["items"]
        assert (message["type"], message["status"], message["attempts"]) == (
            "webhook.test",
            "delivered",
            1,
        )
        attempts = browser.call("GET", f"/api/v1/webhook-messages/{message['_id']}/attempts")
        assert [a["status_code"] for a in attempts.json()] == [200]
        again = browser.call("POST", f"/api/v1/webhook-messages/{message['_id']}/redeliver")
        assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)

        rotated = browser.call("POST", f"/api/v1/webhooks/{eid}/rotate-secret").json()["secret"]
        assert rotated.startswith("whsec_") and rotated != secret
        off = browser.call("PATCH", f"/api/v1/webhooks/{eid}", json={"enabled": False}).json()
        assert (off["enabled"], off["disabled_reason"]) == (False, "disabled by its owner")
        wrong = browser.call("PATCH", f"/api/v1/webhooks/{eid}", json={"kinds": ["teleported"]})
        assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "kinds.0"
        bad = browser.call("POST", "/api/v1/webhooks", json={"url": "ftp://x.example/"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "url"

        other = Browser(base, "hooks-other@example.com", seen)
        assert other.call("GET", f"/api/v1/webhooks/{eid}").status_code == 404
        assert other.call("POST", f"/api/v1/webhooks/{eid}/test").status_code == 404
        redeliver = f"/api/v1/webhook-messages/{message['_id']}/redeliver"
        assert other.call("POST", redeliver).status_code == 404
        assert other.call("GET", "/api/v1/webhooks").json() == []
        assert browser.call("DELETE", f"/api/v1/webhooks/{eid}").status_code == 204
        assert browser.call("GET", f"/api/v1/webhooks/{eid}").status_code == 404
    finally:
        receiver.stop()


def test_an_ab_test_through_the_api(base: str, seen: list[str]) -> None:
    browser = Browser(base, "ab@example.com", seen)
    box = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("ab@acme.com")).json()
    bad = {"subject": "B", "message": "Hi {{first name}}"}
    refused = browser.call(
        "POST", "/api/v1/campaigns", json=_fields(box["_id"]) | {"variants": [bad]}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "variants"
    assert refused.json()["error"]["message"].startswith(
        "variants: step 1, variant B, message, line 1, column 4"
    )
    variant = {"subject": "Other {{first_name}}", "message": "Other words"}
    cid = _campaign(browser, box["_id"], variants=[variant])["campaign_id"]
    browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={
            "file": ("p.csv", b"email,first_name\na@example.com,A\nb@example.com,B\n", "text/csv")
        },
    )
    rows = browser.call("GET", f"/api/v1/campaigns/{cid}/variants").json()
    assert [(r["letter"], r["subject"]) for r in rows] == [
        ("A", "Hi {{first_name}}"),
        ("B", "Other {{first_name}}"),
    ]
    sent = next(f for f in rows[1]["figures"] if f["key"] == "sent")
    assert (sent["count"], sent["rate"]) == (0, None)
    replied = next(f for f in rows[1]["figures"] if f["key"] == "replied")
    assert (replied["count"], replied["of"]) == (0, "delivered")
    export = browser.call("GET", f"/api/v1/campaigns/{cid}/export.csv").text.splitlines()
    assert "variant" in export[0].split(",")
    assert sorted(
        line.split(",")[export[0].split(",").index("variant")] for line in export[1:]
    ) == [
        "A",
        "B",
    ]


def test_a_sequence_through_the_api(base: str, seen: list[str]) -> None:
    browser = Browser(base, "seq@example.com", seen)
    box = browser.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("seq@acme.com")).json()
    bad = [{"delay_days": 2, "message": "Hi {{first name}}"}]
    refused = browser.call(
        "POST", "/api/v1/campaigns", json=_fields(box["_id"]) | {"campaign_steps": bad}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "campaign_steps"
    assert "step 2, message, line 1, column 4" in refused.json()["error"]["message"]
    steps = [
        {"delay_days": 2, "message": "Any thoughts, {{first_name}}?"},
        {"delay_days": 3, "subject": "Last idea", "message": "Bye"},
    ]
    created = _campaign(
        browser, box["_id"], campaign_steps=steps, auto_reply_postpone_days=2, duration=24 * 7
    )
    cid = created["campaign_id"]
    assert [s["step"] for s in created["campaign_steps"]] == [2, 3]
    assert created["auto_reply_postpone_days"] == 2
    imported = browser.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={"file": ("p.csv", b"email,first_name\na@example.com,A\n", "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    funnel = browser.call("GET", f"/api/v1/campaigns/{cid}/steps").json()
    assert [(s["position"], s["step"], s["delay_days"], s["subject"]) for s in funnel] == [
        (1, 1, 0, "Hi {{first_name}}"),
        (2, 2, 2, ""),
        (3, 3, 3, "Last idea"),
    ]
    assert [next(f["count"] for f in s["figures"] if f["key"] == "sent") for s in funnel] == [
        0,
        0,
        0,
    ]
    (day,) = browser.call("GET", f"/api/v1/campaigns/{cid}/plan").json()[:1]
    assert day["first_emails"] == 1
    planned = browser.call("GET", f"/api/v1/campaigns/{cid}/plan").json()
    assert sum(d["follow_ups"] for d in planned) == 2
    # Step 2 goes, one is added: the kept one keeps its number, the new one gets 4.
    kept = [{"step": 3, "delay_days": 1, "subject": "Last idea", "message": "Bye"}]
    new_step = {"delay_hours": 5, "message": "P.S."}
    changed = browser.call(
        "PUT", f"/api/v1/campaigns/{cid}/steps", json={"campaign_steps": [*kept, new_step]}
    )
    assert changed.status_code == 200, changed.text
    assert [s["step"] for s in changed.json()["campaign_steps"]] == [3, 4]
    unknown = browser.call(
        "PUT",
        f"/api/v1/campaigns/{cid}/steps",
        json={"campaign_steps": [{"step": 9, "delay_days": 1, "message": "x"}]},
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "campaign_steps[0].step"
    emails = browser.call("GET", f"/api/v1/campaigns/{cid}/recipients").json()["items"]
    assert sorted((e["step"], e["status"]) for e in emails) == [
        (1, "pending"),
        (3, "waiting"),
        (4, "waiting"),
    ]
    other = Browser(base, "seq-other@example.com", seen)
    assert other.call("GET", f"/api/v1/campaigns/{cid}/steps").status_code == 404
    assert (
        other.call("PUT", f"/api/v1/campaigns/{cid}/steps", json={"campaign_steps": []}).status_code
        == 404
    )


def test_suppression_list_and_legacy_documents(base: str, seen: list[str]) -> None:
    import asyncio

    from mailramp.runtime import open_runtime

    browser = Browser(base, "lists@example.com", seen)
    added = browser.call("POST", "/api/v1/suppressions", json={"email": "Gone@Example.com"})
    assert added.status_code == 201 and added.json() == {"email": "gone@example.com", "added": True}
    assert (
        browser.call("POST", "/api/v1/suppressions", json={"email": "gone@example.com"}).json()[
            "added"
        ]
        is False
    )
    invalid = browser.call("POST", "/api/v1/suppressions", json={"email": "nope"})
    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "email"
    listed = browser.call("GET", "/api/v1/suppressions").json()
    assert [s["email"] for s in listed["items"]] == ["gone@example.com"]
    assert listed["items"][0]["reason"] == "manual"
    assert browser.call("DELETE", "/api/v1/suppressions/gone@example.com").status_code == 204
    assert browser.call("DELETE", "/api/v1/suppressions/gone@example.com").status_code == 404

    user_id = browser.user["_id"]
    settings = _server_settings()

    async def import_legacy() -> None:
        runtime = await open_runtime(settings)
        try:
            await runtime.legacy.import_documents(
                "email_campaigns", [{"user_id": user_id, "name": "Old one"}]
            )
        finally:
            await runtime.close()

    asyncio.run(import_legacy())
    documents = browser.call("GET", "/api/v1/legacy/email_campaigns").json()
    assert [d["document"]["name"] for d in documents["items"]] == ["Old one"]
    one = browser.call("GET", f"/api/v1/legacy/email_campaigns/{documents['items'][0]['_id']}")
    assert one.json()["document"]["name"] == "Old one"
    other = Browser(base, "notmine@example.com", seen)
    assert (
        other.call(
            "GET", f"/api/v1/legacy/email_campaigns/{documents['items'][0]['_id']}"
        ).status_code
        == 404
    )
    assert other.call("GET", "/api/v1/legacy/users").status_code == 422


def test_closed_sign_up_and_secure_cookies_behind_https(tmp_path: Path) -> None:
    import asyncio

    from mailramp.runtime import open_runtime

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_key_file=tmp_path / "mailramp.key",
    )

    async def operator() -> None:
        runtime = await open_runtime(settings)
        try:
            await runtime.accounts.create_user(user_name="Op", login_id="op", password=PASSWORD)
        finally:
            await runtime.close()

    asyncio.run(operator())
    port = free_port()
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_SIGNUP_OPEN="false",
        MAILRAMP_PUBLIC_BASE_URL="https://mail.example.com",
    )
    with (
        serving(port, cwd=tmp_path, env=environment),
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        closed = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "New", "login_id": "new", "password": PASSWORD},
        )
        assert (
            closed.status_code == 403 and "sign-up is closed" in closed.json()["error"]["message"]
        )
        login = client.post("/api/v1/auth/login", json={"login_id": "op", "password": PASSWORD})
        assert login.status_code == 200
        session = next(
            c for c in login.headers.get_list("set-cookie") if c.startswith("mailramp_session=")
        )
        assert "Secure" in session and "HttpOnly" in session


def test_suppressions_are_per_user_and_exports_carry_no_secret(base: str, seen: list[str]) -> None:
    alice = Browser(base, "sup-a@example.com", seen)
    bob = Browser(base, "sup-b@example.com", seen)
    alice.call("POST", "/api/v1/suppressions", json={"email": "x@example.com"})
    assert bob.call("DELETE", "/api/v1/suppressions/x@example.com").status_code == 404
    assert bob.call("GET", "/api/v1/suppressions").json()["total"] == 0
    assert [s["email"] for s in alice.call("GET", "/api/v1/suppressions").json()["items"]] == [
        "x@example.com"
    ]
    box = alice.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("canary@acme.com")).json()
    cid = _campaign(alice, box["_id"])["campaign_id"]
    imported = alice.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={"file": ("p.csv", b"email,first_name\nz@example.com,Zed\n", "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    export = alice.call("GET", f"/api/v1/campaigns/{cid}/export.csv")
    assert "z@example.com" in export.text  # `seen` holds it for the canary test below


def test_unmatched_bounces_are_shown_to_their_owner_only(base: str, seen: list[str]) -> None:
    import asyncio

    from mailramp.runtime import open_runtime
    from tests.support.inbound_mail import exchange_bounce

    alice = Browser(base, "unmatched-a@example.com", seen)
    bob = Browser(base, "unmatched-b@example.com", seen)
    box = alice.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("um@acme.com")).json()
    settings = _server_settings()

    async def a_bounce_arrives() -> str:
        runtime = await open_runtime(settings)
        try:
            mailbox = await runtime.mailboxes.get_mailbox(alice.user["_id"], box["_id"])
            kind = await runtime.inbox_poller().process(
                mailbox, exchange_bounce("stranger@example.org")
            )
            return kind.value
        finally:
            await runtime.close()

    # Nothing was ever sent to that address: the bounce matches no email, and is kept.
    assert asyncio.run(a_bounce_arrives()) == "unrelated"
    listed = alice.call("GET", "/api/v1/inbound/unmatched")
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["kind"], item["recipient"], item["status"], item["reason"]) == (
        "hard_bounce",
        "stranger@example.org",
        "5.1.1",
        "user_unknown",
    )
    assert item["mailbox_id"] == box["_id"] and item["subject"] == "Undeliverable: Hello"
    assert bob.call("GET", "/api/v1/inbound/unmatched").json()["total"] == 0
    page = alice.call("GET", "/settings").text
    assert 'data-unmatched="stranger@example.org"' in page
    assert 'data-unmatched="stranger@example.org"' not in bob.call("GET", "/settings").text


def test_the_inbox_through_the_api_and_the_cli(base: str, seen: list[str]) -> None:
    import asyncio

    from tests.support.processes import run_mailramp
    from tests.support.scenario import reply_arrives

    ann = Browser(base, "inbox-a@example.com", seen)
    box = ann.call("POST", "/api/v1/mailboxes", json=_smtp_mailbox("ia@acme.com")).json()
    cid = _campaign(ann, box["_id"], campaign_name="Spring outreach")["campaign_id"]
    ann.call(
        "POST",
        f"/api/v1/campaigns/{cid}/recipients",
        files={"file": ("p.csv", b"email,first_name\nzoe@example.com,Zoe\n", "text/csv")},
    )
    assert ann.call("POST", f"/api/v1/campaigns/{cid}/launch").status_code == 200
    reply = (
        "From: Zoe <zoe@example.com>\r\nTo: ia@acme.com\r\nSubject: Re: Hello\r\n"
        "Message-ID: <zoe-1@example.com>\r\nIn-Reply-To: {ours}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="M"\r\n\r\n'
        "--M\r\nContent-Type: text/html\r\n\r\n<p>Yes <b>please</b></p>"
        '<img src="https://tracker.example/p.gif"><script>alert(1)</script>\r\n'
        "--M\r\nContent-Type: text/html\r\n"
        "Content-Disposition: attachment; filename*=UTF-8''%C3%A9vil.html\r\n\r\n"
        "<script>alert(document.cookie)</script>\r\n--M--\r\n"
    )

    arrived = reply_arrives(_server_settings(), ann.user["_id"], box["_id"], cid, reply)
    assert asyncio.run(arrived) == "reply"
    listed = ann.call("GET", "/api/v1/inbox").json()
    (thread,) = listed["items"]
    assert (thread["recipient_email"], thread["campaign_name"], thread["unread"]) == (
        "zoe@example.com",
        "Spring outreach",
        1,
    )
    assert thread["latest"]["text"] == "Yes please"
    assert ann.call("GET", "/api/v1/inbox?search=nothing-like-it").json()["total"] == 0
    assert ann.call("GET", "/api/v1/inbox?unread=true").json()["total"] == 1

    rid = thread["record_id"]
    detail = ann.call("GET", f"/api/v1/inbox/{cid}/{rid}").json()
    (message,) = detail["messages"]
    assert message["html"] == "<p>Yes <b>please</b></p>"
    assert [s["step"] for s in detail["sent"]] == [1]
    # Reading through the API leaves it unread (a sync is not a person reading it).
    assert ann.call("GET", "/api/v1/inbox?unread=true").json()["total"] == 1
    read = ann.call("POST", f"/api/v1/inbox/{cid}/{rid}/read").json()
    assert read == {"marked_read": 1}
    assert ann.call("GET", "/api/v1/inbox?unread=true").json()["total"] == 0
    (attachment,) = message["attachments"]
    download = ann.call("GET", f"/api/v1/inbox/attachments/{attachment['id']}")
    assert download.status_code == 200 and download.content.startswith(b"<script>")
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"_vil.html\"; filename*=UTF-8''%C3%A9vil.html"
    )
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]
    marked = ann.call("POST", f"/api/v1/inbox/{cid}/{rid}/unread").json()
    assert marked == {"marked_unread": 1}
    # An answer through a mailbox whose server does not exist: it did not leave, and says so.
    answer = {"text": "Great, Tuesday?", "answer_id": "a" * 24}
    answered = ann.call("POST", f"/api/v1/inbox/{cid}/{rid}/answer", json=answer)
    assert answered.status_code == 201, answered.text
    assert (answered.json()["status"], answered.json()["direction"]) == ("failed", "out")
    assert "smtp.example.com" in answered.json()["error"]
    repeated = ann.call("POST", f"/api/v1/inbox/{cid}/{rid}/answer", json=answer).json()
    assert (repeated["_id"], repeated["status"]) == ("a" * 24, "failed")
    empty = ann.call("POST", f"/api/v1/inbox/{cid}/{rid}/answer", json={"text": "  "})
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "text"

    other = Browser(base, "inbox-b@example.com", seen)
    assert other.call("GET", "/api/v1/inbox").json()["total"] == 0
    assert other.call("GET", f"/api/v1/inbox/{cid}/{rid}").status_code == 404
    stolen = other.call("GET", f"/api/v1/inbox/attachments/{attachment['id']}")
    assert stolen.status_code == 404

    environment = clean_environment(
        MAILRAMP_DATABASE_URL=f"sqlite:///{DIRECTORIES[0] / 'mailramp.db'}",
        MAILRAMP_ENCRYPTION_KEY_FILE=str(DIRECTORIES[0] / "mailramp.key"),
    )
    shown = run_mailramp(
        "inbox", "list", "--user", "inbox-a@example.com", "--unread", "--json",
        cwd=DIRECTORIES[0], env=environment,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    (listed_by_cli,) = json.loads(shown.stdout)
    assert (listed_by_cli["recipient_email"], listed_by_cli["messages"]) == ("zoe@example.com", 2)
    assert listed_by_cli["latest"]["text"] == "Great, Tuesday?"  # the answer, newest


def test_no_response_ever_carried_a_secret(base: str, seen: list[str]) -> None:
    # Runs last in this module: every response body the tests above received is in `seen`,
    # and the server's whole log is in serve.log.
    assert len(seen) > 40
    log = (DIRECTORIES[0] / "serve.log").read_text()
    for text in [*seen, log]:
        assert CANARY_PASSWORD not in text
        assert CANARY_TOKEN not in text
        assert PASSWORD not in text
        assert "enc1:" not in text


def test_the_campaign_page_says_why_its_mailbox_stopped_sending(base: str, seen: list[str]) -> None:
    browser = Browser(base, "stopped@example.com", seen)
    smtp = SmtpServer({"s@acme.com": "smtp-pass"}).start()
    local = {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "plain"}
    fields = {"email": "s@acme.com", "provider": "smtp", "password": "smtp-pass", **local}
    box = browser.call("POST", "/api/v1/mailboxes", json=fields).json()
    cid = _campaign(browser, box["_id"])["campaign_id"]
    assert 'id="mailbox-stopped"' not in browser.call("GET", f"/campaigns/{cid}").text
    browser.call("POST", f"/api/v1/mailboxes/{box['_id']}/pause", json={"reason": "warm-up"})
    page = browser.call("GET", f"/campaigns/{cid}").text
    assert 'id="mailbox-stopped"' in page
    assert "the mailbox s@acme.com cannot send (warm-up)" in page
    activated = browser.call("POST", f"/api/v1/mailboxes/{box['_id']}/activate")
    assert activated.status_code == 200, activated.text  # its server logs it in
    assert 'id="mailbox-stopped"' not in browser.call("GET", f"/campaigns/{cid}").text
    smtp.stop()
