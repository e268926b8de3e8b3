"""Secrets: canary credentials never reach the logs, API responses, dashboard pages, CSV
exports or error pages; after `mailramp keys rotate --drop-old` every mailbox still
decrypts and every tracking link already sent still works.

The first part is one journey through a real `mailramp serve` (uvicorn, worker and inbox
poller in one process, SQLite) with every logger at DEBUG in JSON: a local account (its
session token), an API key, an SMTP+IMAP mailbox whose password is a canary (the SMTP server
on loopback and Dovecot check it at each login), a Gmail mailbox linked by OAuth through
stand-ins of Google's servers (the code and the access and refresh tokens they issue are
canaries; one refresh is forced), a campaign from each mailbox sent and tracked, every
mailbox endpoint of the API and the dashboard, a CSV export, and 500s forced by breaking a
table under the running server. Then the process's whole output is searched.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from mailramp.config import Settings
from mailramp.errors import SecretKeyError
from mailramp.kit.secrets import generate_key
from mailramp.runtime import open_runtime
from tests.support.dovecot import Dovecot
from tests.support.gmail_server import GmailServer
from tests.support.oauth_servers import GoogleStandIn
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, run_mailramp, serving
from tests.support.scenario import make_due_now
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.reliability

SENDER = "ann@acme.com"
GMAIL_ADDRESS = "grace@gmail.example"
SMTP_PASSWORD = "smtp-CANARY-" + secrets.token_hex(8)
SECOND_PASSWORD = "smtp-CANARY-" + secrets.token_hex(8)
USER_PASSWORD = "user-CANARY-" + secrets.token_hex(8)
GOOGLE_SECRET = "google-CANARY-" + secrets.token_hex(8)
KEY = generate_key()
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
MESSAGE = '<p>Hello {{first_name}}, see <a href="https://acme.com/offer">our offer</a>.</p>'


@dataclass
class Journey:
    """What the journey saw: every response body, by what was asked; the export; the
    canaries by kind; the server's log lines."""

    bodies: dict[str, str] = field(default_factory=dict)
    canaries: dict[str, list[str]] = field(default_factory=dict)
    export: str = ""
    errors: dict[str, httpx.Response] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)
    log_text: str = ""
    sent: int = 0
    tracked: dict[str, int] = field(default_factory=dict)

    def every_canary(self) -> list[tuple[str, str]]:
        return [(kind, value) for kind, values in self.canaries.items() for value in values]


class Client:
    """A signed-in browser or script: records every response body it gets."""

    def __init__(self, base: str, journey: Journey) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        journey.clients.append(self.http)
        self.journey = journey
        self.csrf = ""

    def call(self, label: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} | kwargs.pop("headers", {})
        response = self.http.request(method, path, headers=headers, **kwargs)
        self.journey.bodies[label] = response.text
        return response

    def form(self, label: str, path: str, data: dict[str, str]) -> httpx.Response:
        return self.call(label, "POST", path, data={"csrf_token": self.csrf} | data)


def _wait(condition: Any, what: str, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in time:\n{log.read_text()[-5000:]}")
        time.sleep(0.1)


async def _make_due(settings: Settings) -> None:
    runtime = await open_runtime(settings)
    try:
        await make_due_now(runtime)
    finally:
        await runtime.close()


# `mailramp serve` with MAILRAMP_LOG_LEVEL=DEBUG, and every library logger that keeps its
# own level (SQLAlchemy holds itself at WARNING) set to DEBUG before mailramp starts.
SERVE_AT_DEBUG = """
import logging, sys
for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "aiosqlite", "asyncpg",
             "asyncio", "httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error",
             "alembic", "multipart", "mailramp"):
    logging.getLogger(name).setLevel(logging.DEBUG)
from mailramp.cli.main import app
app(["serve", "--port", sys.argv[1]], prog_name="mailramp")
"""


@contextlib.contextmanager
def serving_with_every_logger_at_debug(
    port: int, directory: Path, environment: dict[str, str]
) -> Iterator[None]:
    """Like tests.support.processes.serving, with SERVE_AT_DEBUG; output in serve.log."""
    with (directory / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE_AT_DEBUG, str(port)],
            cwd=directory,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (directory / "serve.log").read_text()
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "mailramp serve did not answer"
                    time.sleep(0.1)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Journey:
    directory = tmp_path_factory.mktemp("canaries")
    database = directory / "mailramp.db"
    google = GoogleStandIn(
        client_id="google-client.apps.googleusercontent.com", client_secret=GOOGLE_SECRET
    )
    google.start()
    gmail = GmailServer(accepts=lambda token: token in google.access_tokens)
    gmail.start()
    smtp = SmtpServer({SENDER: SMTP_PASSWORD, "bo@acme.com": SECOND_PASSWORD}).start()
    imap = Dovecot.start({SENDER: SMTP_PASSWORD})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        "MAILRAMP_DATABASE_URL": f"sqlite:///{database}",
        "MAILRAMP_ENCRYPTION_KEYS": KEY,
        "MAILRAMP_PUBLIC_BASE_URL": base,
        "MAILRAMP_ALLOW_PRIVATE_HOSTS": "true",
        "MAILRAMP_LOG_LEVEL": "DEBUG",
        "MAILRAMP_LOG_FORMAT": "json",
        "MAILRAMP_WORKER_POLL_SECONDS": "0.2",
        "MAILRAMP_INBOX_POLL_INTERVAL_SECONDS": "1",
        "MAILRAMP_GOOGLE_CLIENT_ID": google.client_id,
        "MAILRAMP_GOOGLE_CLIENT_SECRET": GOOGLE_SECRET,
        "MAILRAMP_GOOGLE_AUTH_URL": google.auth_url,
        "MAILRAMP_GOOGLE_TOKEN_URL": google.token_url,
        "MAILRAMP_GOOGLE_USERINFO_URL": google.userinfo_url,
        "MAILRAMP_GMAIL_URL": gmail.url,
    }
    settings = Settings(database_url=f"sqlite:///{database}", encryption_keys=KEY)  # the test's own
    log = directory / "serve.log"
    found = Journey()
    try:
        with serving_with_every_logger_at_debug(port, directory, clean_environment(**environment)):
            _walk(found, base, settings, google, gmail, smtp, imap, log, database)
        found.log_text = log.read_text()
    finally:
        google.stop()
        gmail.stop()
        smtp.stop()
        imap.stop()
        for client in found.clients:
            client.close()
    found.log = [json.loads(line) for line in found.log_text.splitlines() if line.startswith("{")]
    found.canaries |= {
        "smtp/imap password": [SMTP_PASSWORD, SECOND_PASSWORD],
        "user password": [USER_PASSWORD],
        "oauth client secret": [GOOGLE_SECRET],
        "oauth code": list(google.grants),
        "oauth access token": list(google.access_tokens),
        "oauth refresh token": list(google.refresh_tokens),
        "encryption key": [KEY],
    }
    return found


def _walk(
    found: Journey,
    base: str,
    settings: Settings,
    google: GoogleStandIn,
    gmail: GmailServer,
    smtp: SmtpServer,
    imap: Dovecot,
    log: Path,
    database: Path,
) -> None:
    ann = Client(base, found)
    signed_up = ann.call(
        "signup",
        "POST",
        "/api/v1/auth/signup",
        json={"user_name": "Ann", "login_id": "ann", "password": USER_PASSWORD},
    )
    assert signed_up.status_code == 201, signed_up.text
    ann.csrf = signed_up.json()["csrf_token"]
    session_token = ann.http.cookies["mailramp_session"]
    created_key = ann.call("create api key", "POST", "/api/v1/api-keys", json={"name": "script"})
    assert created_key.status_code == 201, created_key.text
    api_key = created_key.json()["key"]
    found.canaries["session token"] = [session_token]
    found.canaries["api key"] = [api_key]
    script = Client(base, found)  # a script: API key, no cookie, no CSRF token
    script.http.headers["Authorization"] = f"Bearer {api_key}"
    assert script.call("api key: list api keys", "GET", "/api/v1/api-keys").status_code == 200

    smtp_fields = {
        "provider": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_security": "plain",
        "imap_host": "127.0.0.1",
        "imap_port": imap.port,
        "imap_security": "plain",
    }
    linked = script.call(
        "POST /mailboxes (smtp)",
        "POST",
        "/api/v1/mailboxes",
        json={"email": SENDER, "password": SMTP_PASSWORD} | smtp_fields,
    )
    assert linked.status_code == 201, linked.text
    box = linked.json()["mailbox_id"]
    refused = script.call(
        "POST /mailboxes (422, password given)",
        "POST",
        "/api/v1/mailboxes",
        json={"email": "not an address", "password": SECOND_PASSWORD} | smtp_fields,
    )
    assert refused.status_code == 422, refused.text
    spare = script.call(
        "POST /mailboxes (second smtp)",
        "POST",
        "/api/v1/mailboxes",
        json={"email": "bo@acme.com", "password": SECOND_PASSWORD} | smtp_fields,
    ).json()["mailbox_id"]

    # Gmail by OAuth: consent at Google's stand-in, back to the callback with the code.
    started = ann.call(
        "POST /mailboxes/oauth/gmail/start",
        "POST",
        "/api/v1/mailboxes/oauth/gmail/start",
        json={"login_hint": GMAIL_ADDRESS},
    )
    assert started.status_code == 200, started.text
    consent = httpx.get(started.json()["authorize_url"])
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["location"])
    assert "code=" in back.query
    came_back = ann.call(
        "GET /mailboxes/oauth/gmail/callback",
        "GET",
        f"{back.path}?{back.query}",
        headers={"Accept": "application/json"},
    )
    assert came_back.status_code == 200, came_back.text
    gmail_box = came_back.json()["mailbox_id"]

    for label, method, path, body in [
        ("GET /mailboxes", "GET", "/api/v1/mailboxes", None),
        ("GET /mailboxes?include_unlinked", "GET", "/api/v1/mailboxes?include_unlinked=true", None),
        ("GET /mailboxes/{smtp}", "GET", f"/api/v1/mailboxes/{box}", None),
        ("GET /mailboxes/{gmail}", "GET", f"/api/v1/mailboxes/{gmail_box}", None),
        (
            "PATCH /mailboxes/{smtp}",
            "PATCH",
            f"/api/v1/mailboxes/{box}",
            {"password": SMTP_PASSWORD},
        ),
        (
            "PATCH /mailboxes/{smtp} (422, password given)",
            "PATCH",
            f"/api/v1/mailboxes/{box}",
            {"password": SMTP_PASSWORD, "daily_limit": -5},
        ),
        # An expired access token: the next use refreshes it with the refresh token.
        (
            "PATCH /mailboxes/{gmail}",
            "PATCH",
            f"/api/v1/mailboxes/{gmail_box}",
            {"token_expires_at": "2020-01-01T00:00:00Z"},
        ),
        ("POST /mailboxes/{smtp}/primary", "POST", f"/api/v1/mailboxes/{box}/primary", None),
        ("POST /mailboxes/{smtp}/pause", "POST", f"/api/v1/mailboxes/{box}/pause", {}),
        ("POST /mailboxes/{smtp}/activate", "POST", f"/api/v1/mailboxes/{box}/activate", None),
        ("POST /mailboxes/{smtp}/test", "POST", f"/api/v1/mailboxes/{box}/test", None),
        ("POST /mailboxes/{gmail}/test", "POST", f"/api/v1/mailboxes/{gmail_box}/test", None),
        ("DELETE /mailboxes/{second}", "DELETE", f"/api/v1/mailboxes/{spare}", None),
        ("GET /mailboxes/{unknown} (404)", "GET", "/api/v1/mailboxes/" + "0" * 24, None),
    ]:
        response = ann.call(label, method, path, json=body)
        assert response.status_code in (200, 404, 422), (label, response.text)
    tested = json.loads(found.bodies["POST /mailboxes/{smtp}/test"])
    assert tested == {"smtp": {"ok": True}, "imap": {"ok": True}}  # the canary logged in

    # The dashboard's mailbox pages and forms.
    assert ann.call("page /mailboxes", "GET", "/mailboxes").status_code == 200
    assert ann.call("page edit", "GET", f"/mailboxes/{box}/edit").status_code == 200
    edit = ann.form(
        "page edit (error, password given)",
        f"/mailboxes/{box}/edit",
        {"password": SMTP_PASSWORD, "smtp_host": "127.0.0.1", "daily_limit": "lots"},
    )
    assert edit.status_code == 422, edit.text
    add = ann.form(
        "page link (error, password given)",
        "/mailboxes",
        {"email": "oops", "password": SECOND_PASSWORD, "smtp_host": "127.0.0.1"},
    )
    assert add.status_code == 422, add.text
    assert ann.form("page test", f"/mailboxes/{box}/test", {}).status_code == 200

    # A campaign from each mailbox, sent by the worker; the links in the SMTP one are used.
    campaigns = {}
    for name, mailbox_id in (("smtp", box), ("gmail", gmail_box)):
        created = ann.call(
            f"POST /campaigns ({name})",
            "POST",
            "/api/v1/campaigns",
            json={
                "mailbox_id": mailbox_id,
                "campaign_name": f"Canary {name}",
                "subject": "Hi",
                "message": MESSAGE,
                "message_format": "html",
                "duration": 2,
                "start_time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            },
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["campaign_id"]
        imported = ann.call(
            f"POST recipients ({name})",
            "POST",
            f"/api/v1/campaigns/{campaign_id}/recipients",
            files={
                "file": ("r.csv", io.BytesIO(f"email,first_name\n{name}@example.com,Bo\n".encode()))
            },
        )
        assert imported.status_code == 200, imported.text
        campaigns[name] = campaign_id
    asyncio.run(_make_due(settings))
    _wait(lambda: smtp.inbox.to("smtp@example.com") and gmail.messages, "both sends", log)
    found.sent = len(smtp.inbox.messages) + len(gmail.messages)
    _wait(lambda: len(google.access_tokens) >= 2, "the forced token refresh", log)

    mail = smtp.inbox.to("smtp@example.com")[0]
    html = mail.get_body(preferencelist=("html",))
    assert html is not None
    links = re.findall(r'(?:src|href)="([^"]+/t/[oc]/[^"]+)"', html.get_content())
    unsubscribe = mail["List-Unsubscribe"].strip().strip("<>")
    for link in links:
        httpx.get(link, headers={"User-Agent": BROWSER})
    httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    found.tracked = {"links": len(links) + 1}

    exported = ann.call("export.csv", "GET", f"/api/v1/campaigns/{campaigns['smtp']}/export.csv")
    assert exported.status_code == 200, exported.text
    found.export = exported.text
    found.errors["export"] = exported

    # 500s: a column renamed under the running server, with the debug flags off.
    with sqlite3.connect(database) as connection:
        connection.execute(
            "ALTER TABLE linkbox_box_table RENAME COLUMN status_reason TO status_reason_gone"
        )
    try:
        found.errors["api 500"] = ann.call("GET /mailboxes (500)", "GET", "/api/v1/mailboxes")
        found.errors["api 500 with password"] = ann.call(
            "PATCH /mailboxes/{smtp} (500)",
            "PATCH",
            f"/api/v1/mailboxes/{box}",
            json={"password": SMTP_PASSWORD},
        )
        found.errors["page 500"] = ann.call("page /mailboxes (500)", "GET", "/mailboxes")
    finally:
        with sqlite3.connect(database) as connection:
            connection.execute(
                "ALTER TABLE linkbox_box_table RENAME COLUMN status_reason_gone TO status_reason"
            )
    assert ann.call("GET /mailboxes (after)", "GET", "/api/v1/mailboxes").status_code == 200


# -- what the journey shows -----------------------------------------------------------------


def test_the_journey_used_every_canary(journey: Journey) -> None:
    assert journey.sent == 2
    counts = {kind: len(values) for kind, values in journey.canaries.items()}
    assert counts["oauth code"] == 1
    assert counts["oauth access token"] >= 2  # linked, then refreshed
    assert counts["oauth refresh token"] >= 1
    assert all(counts.values())


def test_no_canary_in_any_log_line(journey: Journey) -> None:
    loggers = {line["logger"] for line in journey.log}
    # Every logger was at DEBUG: the SQL, the HTTP clients, uvicorn, the worker.
    for expected in (
        "sqlalchemy.engine.Engine",
        "uvicorn.access",
        "httpx",
        "mailramp.sending.worker",
    ):
        assert expected in loggers, sorted(loggers)
    assert len(journey.log) > 500
    leaks = [
        (kind, line)
        for kind, value in journey.every_canary()
        for line in journey.log_text.splitlines()
        if value in line
    ]
    assert leaks == []


def test_the_access_log_keeps_no_query_value_tracking_token_or_full_address(
    journey: Journey,
) -> None:
    access = [line["message"] for line in journey.log if line["logger"] == "uvicorn.access"]
    assert len(access) >= 30
    assert all(line.startswith('127.0.0.0 - "') for line in access), access[:3]
    callback = [line for line in access if "/oauth/gmail/callback" in line]
    assert callback == [
        '127.0.0.0 - "GET /api/v1/mailboxes/oauth/gmail/callback'
        '?code=[redacted]&state=[redacted] HTTP/1.1" 200'
    ]
    tracking = [line for line in access if '"GET /t/' in line or '"POST /t/' in line]
    assert len(tracking) == journey.tracked["links"]
    assert all(re.search(r" /t/[ocu]/\[token\] HTTP", line) for line in tracking), tracking
    # Nothing in the log names a client's full address (the SMTP/IMAP peers are servers).
    assert not any("127.0.0.1:" in line and "uvicorn" in line for line in access)
    assert not any(
        line["logger"] == "aiosqlite" and line["level"] == "DEBUG" for line in journey.log
    )


def test_no_canary_in_any_response_or_page(journey: Journey) -> None:
    mailbox_calls = [label for label in journey.bodies if "mailboxes" in label or "page" in label]
    assert len(mailbox_calls) >= 25
    leaks = [
        (kind, label)
        for kind, value in journey.every_canary()
        for label, body in journey.bodies.items()
        if value in body and not (kind == "api key" and label == "create api key")
    ]
    assert leaks == []
    assert journey.canaries["api key"][0] in journey.bodies["create api key"]  # shown once


def test_no_canary_in_the_csv_export(journey: Journey) -> None:
    assert journey.export.splitlines()[0].startswith("recipient_email") or "smtp@example.com" in (
        journey.export
    )
    assert "smtp@example.com" in journey.export
    assert [kind for kind, value in journey.every_canary() if value in journey.export] == []


def test_error_pages_say_nothing_of_what_went_wrong(journey: Journey) -> None:
    for name in ("api 500", "api 500 with password", "page 500"):
        response = journey.errors[name]
        assert response.status_code == 500, name
        assert response.json() == {
            "error": {
                "code": "internal",
                "message": "internal error; the server log has the details",
            }
        }
    tracebacks = [line for line in journey.log if "status_reason" in line.get("exception", "")]
    assert tracebacks, "the 500s were logged with their traceback"


# -- `mailramp keys rotate --drop-old`, on SQLite and PostgreSQL --------------------------------

SMTP_SECRETS = [f"smtp-rotated-{n}-" + secrets.token_hex(6) for n in range(3)]
OAUTH_SECRETS = {
    (provider, n): (f"access-{provider}-{n}-" + secrets.token_hex(6), f"refresh-{provider}-{n}")
    for provider, n in (("gmail", 0), ("gmail", 1), ("outlook", 0))
}
OFFER = "https://acme.com/offer"


@dataclass
class Sent:
    """What was stored and sent before the rotation."""

    user_id: str
    campaign_id: str
    secrets: dict[str, dict[str, str]]  # mailbox_id → field → plaintext
    mails: dict[str, Any]  # recipient → the message as received


async def _link_and_send(settings: Settings, smtp: SmtpServer) -> Sent:
    runtime = await open_runtime(settings)
    try:
        user = await runtime.accounts.create_user(user_name="Ann", login_id="ann")
        stored: dict[str, dict[str, str]] = {}
        for n, password in enumerate(SMTP_SECRETS):
            box = await runtime.mailboxes.create_mailbox(
                user.user_id,
                email=SENDER if n == 0 else f"ann{n}@acme.com",
                provider="smtp",
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_security="plain",
                imap_host="127.0.0.1" if n == 1 else None,
                password=password,
            )
            stored[box.mailbox_id] = {"password": password}
        for (provider, n), (access, refresh) in OAUTH_SECRETS.items():
            box = await runtime.mailboxes.create_mailbox(
                user.user_id,
                email=f"grace{n}@{provider}.example",
                provider=provider,
                access_token=access,
                refresh_token=refresh,
            )
            stored[box.mailbox_id] = {"access_token": access, "refresh_token": refresh}
        sender = next(iter(stored))
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=sender,
            campaign_name="Before the rotation",
            subject="Hi",
            message=MESSAGE,
            message_format="html",
            duration=2,
            start_time=runtime.clock() - timedelta(minutes=5),
        )
        rows = "email,first_name\nbo@example.com,Bo\ncy@example.com,Cy\n"
        await runtime.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
        )
        await make_due_now(runtime)
        worker = runtime.worker()
        try:
            await worker.tick()
        finally:
            await worker.close()
    finally:
        await runtime.close()
    mails = {str(received.message["To"]): received.message for received in smtp.inbox.messages}
    assert sorted(mails) == ["bo@example.com", "cy@example.com"]
    return Sent(user.user_id, campaign.campaign_id, stored, mails)


async def _decrypted(settings: Settings, sent: Sent) -> tuple[dict[str, dict[str, str]], int]:
    runtime = await open_runtime(settings)
    try:
        found = {}
        for mailbox_id in sent.secrets:
            credentials = await runtime.mailboxes.credentials(sent.user_id, mailbox_id)
            values = {
                name: getattr(credentials, name).get_secret_value()
                for name in ("password", "access_token", "refresh_token")
                if getattr(credentials, name) is not None
            }
            found[mailbox_id] = values
        return found, await runtime.mailboxes.check_secrets(sample=None)
    finally:
        await runtime.close()


async def _what_was_recorded(settings: Settings, sent: Sent) -> tuple[Any, set[str]]:
    runtime = await open_runtime(settings)
    try:
        metrics = await runtime.metrics.get_campaign_metrics(sent.campaign_id, user_id=sent.user_id)
        suppressed = await runtime.store.suppressed_among(
            sent.user_id, ["bo@example.com", "cy@example.com"]
        )
        return metrics, suppressed
    finally:
        await runtime.close()


def _links(mail: Any) -> tuple[str, str, str]:
    """The open pixel, the click link and the unsubscribe URL of a received message."""
    html = mail.get_body(preferencelist=("html",)).get_content()
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html)
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html)
    assert pixel is not None and click is not None, html
    return pixel.group(1), click.group(1), mail["List-Unsubscribe"].strip().strip("<>")


def test_after_rotate_and_drop_old_every_secret_decrypts_and_sent_links_still_work(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key_file = tmp_path / "mailramp.key"
    settings = Settings(
        database_url=database_url,
        encryption_key_file=key_file,
        public_base_url=base,
        allow_private_hosts=True,
    )
    smtp = SmtpServer({SENDER: SMTP_SECRETS[0]}).start()
    try:
        sent = asyncio.run(_link_and_send(settings, smtp))
    finally:
        smtp.stop()
    old_key = [line for line in key_file.read_text().splitlines() if not line.startswith("#")]
    environment = clean_environment(
        MAILRAMP_DATABASE_URL=database_url,
        MAILRAMP_ENCRYPTION_KEY_FILE=str(key_file),
        MAILRAMP_PUBLIC_BASE_URL=base,
        MAILRAMP_RUN_WORKER="false",
    )

    rotated = run_mailramp("keys", "rotate", "--drop-old", cwd=tmp_path, env=environment)
    assert rotated.returncode == 0, rotated.stderr
    # 3 passwords, 6 OAuth tokens (3 mailboxes), the tracking links' signing keys and the
    # warm-up marker's key.
    assert "re-encrypted 11 secret(s) under the newest key" in rotated.stdout
    assert "removed 1 older key(s)" in rotated.stdout
    new_key = [line for line in key_file.read_text().splitlines() if not line.startswith("#")]
    assert len(new_key) == 1 and new_key != old_key

    # Every mailbox decrypts with the new key alone; the old key alone opens nothing.
    decrypted, checked = asyncio.run(_decrypted(settings, sent))
    assert decrypted == sent.secrets
    assert checked == 9
    old_only = settings.model_copy(update={"encryption_keys": SecretStr(old_key[0])})
    with pytest.raises(SecretKeyError, match="no key in the key set decrypts"):
        asyncio.run(_decrypted(old_only, sent))

    # Links in the mail sent before the rotation: opened, clicked, unsubscribed.
    pixel, click, unsubscribe = _links(sent.mails["bo@example.com"])
    *_, cy_unsubscribe = _links(sent.mails["cy@example.com"])
    with serving(port, cwd=tmp_path, env=environment):
        opened = httpx.get(pixel, headers={"User-Agent": BROWSER})
        clicked = httpx.get(click, headers={"User-Agent": BROWSER})
        left = httpx.post(cy_unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    assert clicked.status_code in (302, 303, 307) and clicked.headers["location"] == OFFER
    assert left.status_code == 200, left.text
    assert unsubscribe.startswith(f"{base}/t/u/")
    metrics, suppressed = asyncio.run(_what_was_recorded(settings, sent))
    assert (metrics.total_opened, metrics.total_clicks, metrics.total_unsubscribed) == (1, 1, 1)
    assert suppressed == {"cy@example.com"}
