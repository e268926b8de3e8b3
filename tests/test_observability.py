"""Operating mailramp as an operator sees it: /metrics of `mailramp serve` after real sends
and tracking hits, the metrics token, the queue depth on every backend, the worker's health
server, and log lines as JSON."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from mailramp import __version__
from mailramp.config import Settings
from mailramp.errors import ConfigurationError
from mailramp.observability import configure_logging
from mailramp.runtime import Runtime, open_runtime
from mailramp.sending.repository import Lease
from mailramp.storage.sql.migrate import head_revision
from mailramp.web.app import create_app
from mailramp.web.health import health_server, serve_health
from tests.conftest import PostgresTarget, _admin, new_postgres_database
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.scenario import make_due_now, smtp_sender
from tests.support.smtp import SmtpServer

TOKEN = "metrics-token-for-tests"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
SENDS = 'mailramp_sends_total{result="%s"}'
EVENTS = 'mailramp_tracking_events_total{event="%s",source="%s"}'
QUEUE = 'mailramp_queue_depth{state="%s"}'


def samples(exposition: str) -> dict[str, float]:
    """Every sample of a text exposition, by its name and labels as written there."""
    values: dict[str, float] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


async def _campaign(runtime: Runtime, smtp: SmtpServer, recipients: list[str]) -> str:
    """Ann's HTML campaign (tracked links) to `recipients`, all due now; its campaign_id."""
    user, mailbox = await smtp_sender(runtime, email="ann@acme.com", smtp_port=smtp.port)
    campaign = await runtime.campaigns.create_campaign(
        user.user_id,
        mailbox_id=mailbox.mailbox_id,
        campaign_name="Observed",
        subject="Hi",
        message='<p>Hello, see <a href="https://acme.com/offer">our offer</a>.</p>',
        message_format="html",
        duration=4,
        start_time=runtime.clock() - timedelta(minutes=5),
    )
    rows = "email\n" + "".join(f"{address}\n" for address in recipients)
    await runtime.sending.import_recipients(
        user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
    )
    await make_due_now(runtime, campaign.campaign_id)
    return campaign.campaign_id


# -- `mailramp serve`: its worker sends, recipients open, Prometheus scrapes -----------------


@dataclass
class Served:
    base: str
    mails: dict[str, EmailMessage]

    def metrics(self) -> dict[str, float]:
        response = httpx.get(f"{self.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.text
        return samples(response.text)

    def pixel(self, recipient: str) -> str:
        body = self.mails[recipient].get_body(preferencelist=("html",))
        assert body is not None
        found = re.search(r'<img src="([^"]+)"', body.get_content())
        assert found is not None
        return found.group(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`mailramp serve` with its worker, a metrics token, and a campaign of three due
    recipients on a real SMTP server that refuses one of them for good; yields once the
    worker has handled all three."""
    directory = tmp_path_factory.mktemp("observed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    smtp = SmtpServer({"ann@acme.com": "pw"}).start()
    smtp.inbox.rcpt_replies["gone@example.com"] = ["550 5.1.1 No such user here!"]
    recipients = ["ann@example.com", "ben@example.com", "gone@example.com"]
    settings = Settings(
        database_url=f"sqlite:///{directory / 'mailramp.db'}",
        encryption_key_file=directory / "mailramp.key",
        public_base_url=base,
        allow_private_hosts=True,
    )

    async def prepare() -> None:
        runtime = await open_runtime(settings)
        try:
            await _campaign(runtime, smtp, recipients)
        finally:
            await runtime.close()

    environment = clean_environment(
        MAILRAMP_PUBLIC_BASE_URL=base,
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
        MAILRAMP_METRICS_TOKEN=TOKEN,
        MAILRAMP_WORKER_POLL_SECONDS="0.2",
        # A person's open is counted as theirs when it settles: soon, here.
        MAILRAMP_SETTLE_SECONDS="2",
        MAILRAMP_SCANNER_BURST_SECONDS="1",
    )
    try:
        asyncio.run(prepare())
        with serving(port, cwd=directory, env=environment):
            site = Served(base, {})
            deadline = time.monotonic() + 30
            while sum(site.metrics()[SENDS % r] for r in ("sent", "bounced")) < 3:
                if time.monotonic() > deadline:
                    log = (directory / "serve.log").read_text()
                    raise AssertionError(f"the worker did not send in time:\n{log}")
                time.sleep(0.2)
            site.mails = {str(r.message["To"]): r.message for r in smtp.inbox.messages}
            yield site
    finally:
        smtp.stop()


def test_metrics_count_the_sends_of_the_serve_worker(served: Served) -> None:
    response = httpx.get(f"{served.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.headers["content-type"].startswith("text/plain; version=")
    metrics = samples(response.text)
    assert metrics[SENDS % "sent"] == 2
    assert metrics[SENDS % "bounced"] == 1  # 550 at RCPT: permanent, counted apart
    assert metrics[SENDS % "retry"] == metrics[SENDS % "failed"] == 0
    assert metrics[SENDS % "uncertain"] == 0
    assert metrics["mailramp_send_duration_seconds_count"] == 3
    assert metrics["mailramp_claim_latency_seconds_count"] >= 1
    # Everything went out: nothing due, nothing in flight.
    assert metrics[QUEUE % "due"] == 0
    assert metrics[QUEUE % "sending"] == 0
    build = f'mailramp_build_info{{schema="{head_revision()}",version="{__version__}"}}'
    assert metrics[build] == 1
    assert sorted(served.mails) == ["ann@example.com", "ben@example.com"]


def test_metrics_count_tracking_hits_by_person_and_machine(served: Served) -> None:
    before = served.metrics()
    assert httpx.get(served.pixel("ann@example.com"), headers={"User-Agent": BROWSER}).is_success
    assert httpx.get(
        served.pixel("ben@example.com"), headers={"User-Agent": GMAIL_PROXY}
    ).is_success
    unsubscribe = served.mails["ben@example.com"]["List-Unsubscribe"].strip().strip("<>")
    assert httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).is_success
    assert httpx.get(f"{served.base}/t/o/not-a-token").is_success  # a GIF, but no event

    def moved() -> dict[str, float]:
        after = served.metrics()
        return {
            series: after[series] - before[series]
            for series in after
            if series.startswith("mailramp_tracking_events_total")
            and after[series] != before[series]
        }

    # The proxy's open is a machine's at once; the person's counts once it settles, when
    # the serve process's worker decides it (2 s on, here).
    deadline = time.monotonic() + 20
    while EVENTS % ("open", "human") not in moved() and time.monotonic() < deadline:
        time.sleep(0.2)
    after = served.metrics()
    assert moved() == {
        EVENTS % ("open", "human"): 1,
        EVENTS % ("open", "machine"): 1,
        EVENTS % ("unsubscribe", "human"): 1,
    }
    # Every kind is exported from the start, at 0 until it happens.
    assert after[EVENTS % ("reply", "inbox")] == 0
    assert after[EVENTS % ("bounce", "inbox")] == 0


def test_metrics_need_the_token_when_one_is_set(served: Served) -> None:
    url = f"{served.base}/metrics"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthenticated"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in missing.text
    wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    right = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert "mailramp_sends_total" in right.text


def test_metrics_is_not_part_of_the_api_schema(served: Served) -> None:
    paths = httpx.get(f"{served.base}/openapi.json").json()["paths"]
    assert "/metrics" not in paths
    assert "/healthz" in paths


# -- the queue depth, on every backend -------------------------------------------------------


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(
        Settings(
            database_url=database_url,
            encryption_key_file=tmp_path / "mailramp.key",
            allow_private_hosts=True,
            metrics_token=SecretStr(TOKEN),
        )
    )
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer({"ann@acme.com": "pw"}).start()
    try:
        yield server
    finally:
        server.stop()


async def test_queue_depth_on_metrics_follows_the_queue(
    database_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    settings = Settings(
        database_url=database_url,
        encryption_key_file=tmp_path / "mailramp.key",
        run_worker=False,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client,
    ):

        async def depth() -> tuple[float, float]:
            metrics = samples((await client.get("/metrics")).text)
            return metrics[QUEUE % "due"], metrics[QUEUE % "sending"]

        assert await depth() == (0, 0)
        runtime: Runtime = app.state.runtime
        recipients = [f"p{n}@example.com" for n in range(5)]
        await _campaign(runtime, smtp, recipients)
        # No worker runs: the campaign is still `scheduled`, and its five records are due.
        assert await depth() == (5, 0)

        now = datetime.now(UTC)
        lease = now + timedelta(minutes=2)
        await runtime.store.run_lifecycle(now=now)
        claimed = await runtime.store.claim_due(Lease("w", now, lease), limit=2)
        await runtime.store.start_sending(Lease("w", now, lease), {claimed[0].id: "<m@x>"})
        assert await depth() == (3, 1)


# -- the worker's health server --------------------------------------------------------------


async def test_worker_health_server_answers_health_and_the_workers_metrics(
    runtime: Runtime, smtp: SmtpServer
) -> None:
    await _campaign(runtime, smtp, ["ann@example.com", "ben@example.com"])
    async with (
        health_server(runtime, port=0) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {
            "status": "ok",
            "version": __version__,
            "database": {
                "backend": runtime.store.backend,
                "schema_version": head_revision(),
                "schema_head": head_revision(),
                "up_to_date": True,
                "schema_newer": False,
            },
            "workers": {"alive": 0, "stopped": 0, "gone": 0},
        }
        assert (await client.get("/metrics")).status_code == 401
        authorized = {"Authorization": f"Bearer {TOKEN}"}
        before = samples((await client.get("/metrics", headers=authorized)).text)
        assert before[QUEUE % "due"] == 2
        assert before[SENDS % "sent"] == 0

        worker = runtime.worker()
        while await worker.tick():
            pass
        await worker.close()

        after = samples((await client.get("/metrics", headers=authorized)).text)
        assert after[SENDS % "sent"] == 2
        assert after[QUEUE % "due"] == 0
        assert after["mailramp_send_duration_seconds_count"] == 2
        assert (await client.get("/nothing-here")).status_code == 404
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{server.url}/healthz")  # stopped with the block


async def test_health_server_refuses_a_port_in_use(runtime: Runtime) -> None:
    async with health_server(runtime, port=0) as first:
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            async with health_server(runtime, port=first.port):
                pass


async def test_serve_health_serves_until_cancelled(tmp_path: Path) -> None:
    runtime = await open_runtime(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            encryption_key_file=tmp_path / "key",
        )
    )
    port = free_port()
    task = asyncio.create_task(serve_health(runtime, port=port))
    try:
        async with httpx.AsyncClient() as client:
            response = None
            for _ in range(200):
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            assert response is not None and response.json()["status"] == "ok"
            metrics = await client.get(f"http://127.0.0.1:{port}/metrics")  # no token set
            assert metrics.status_code == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await runtime.close()


async def test_health_and_metrics_when_the_database_goes_away(
    postgres: PostgresTarget, tmp_path: Path
) -> None:
    url = await new_postgres_database(postgres)
    runtime = await open_runtime(
        Settings(database_url=url, encryption_key_file=tmp_path / "mailramp.key")
    )
    try:
        async with health_server(runtime, port=0) as server, httpx.AsyncClient() as client:
            assert (await client.get(f"{server.url}/healthz")).status_code == 200
            database = url.rsplit("/", 1)[1]
            await _admin(postgres, f"DROP DATABASE {database} WITH (FORCE)")

            health = await client.get(f"{server.url}/healthz")
            assert health.status_code == 503
            assert health.json()["status"] == "database_unreachable"
            assert health.json()["database"]["reachable"] is False
            # The process's own metrics still answer; the queue depth is absent, not stale.
            metrics = await client.get(f"{server.url}/metrics")
            assert metrics.status_code == 200
            assert SENDS % "sent" in metrics.text
            assert "mailramp_queue_depth{" not in metrics.text
    finally:
        await runtime.close()


# -- logs ------------------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Log records at INFO, as JSON lines, written to the yielded stream."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(Settings(log_format="json", log_level="INFO"), stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_worker_logs_one_json_line_per_pass(
    runtime: Runtime, smtp: SmtpServer, log_lines: io.StringIO
) -> None:
    smtp.inbox.rcpt_replies["gone@example.com"] = ["550 5.1.1 No such user here!"]
    await _campaign(runtime, smtp, ["ann@example.com", "ben@example.com", "gone@example.com"])
    worker = runtime.worker()
    while await worker.tick():
        pass
    await worker.close()

    lines = log_lines.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    passes = [entry for entry in entries if "claimed" in entry]
    assert len(passes) == 1  # one line for the pass, none per email at INFO
    entry = passes[0]
    assert entry["level"] == "INFO"
    assert entry["logger"] == "mailramp.sending.worker"
    assert entry["worker_id"] == worker.worker_id
    assert (entry["claimed"], entry["sent"], entry["bounced"], entry["retry"]) == (3, 2, 1, 0)
    assert (entry["failed"], entry["uncertain"], entry["released"]) == (0, 0, 0)
    assert isinstance(entry["duration_seconds"], float)
    assert "claimed 3, sent 2, bounced 1" in entry["message"]
    written_at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert written_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - written_at) < timedelta(minutes=5)
    # Recipients stay out of mailramp's INFO lines (the test SMTP server logs its own).
    ours = [
        line for line, entry in zip(lines, entries, strict=True) if "mailramp" in entry["logger"]
    ]
    assert ours and not any("ann@example.com" in line for line in ours)


def test_json_lines_carry_extra_fields_and_tracebacks_never_secrets(
    log_lines: io.StringIO,
) -> None:
    logger = logging.getLogger("mailramp.test")
    logger.info("plain %s", "words", extra={"campaign_id": "c-1", "count": 3})
    logger.info("secret", extra={"password": SecretStr("hunter2-PLAINTEXT")})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it broke", extra={"time": "not mine"})
    logger.debug("below the level")
    lines = log_lines.getvalue().splitlines()
    assert len(lines) == 3
    plain, secret, broken = (json.loads(line) for line in lines)
    assert plain["message"] == "plain words"
    assert (plain["campaign_id"], plain["count"]) == ("c-1", 3)
    assert set(plain) == {"time", "level", "logger", "message", "campaign_id", "count"}
    assert "PLAINTEXT" not in lines[1] and secret["password"] == "**********"
    assert broken["level"] == "ERROR"
    assert "ValueError: boom" in broken["exception"]
    assert broken["time"] != "not mine"  # an extra field never replaces the line's own


def test_text_is_the_default_and_configuring_again_replaces_the_handler() -> None:
    root = logging.getLogger()
    level = root.level
    first, second = io.StringIO(), io.StringIO()
    handler = configure_logging(Settings(), stream=first)
    try:
        handler = configure_logging(Settings(), stream=second)
        logging.getLogger("mailramp.test").warning("in text")
        assert first.getvalue() == ""
        line = second.getvalue().strip()
        assert line.endswith("WARNING mailramp.test: in text")
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert [h.get_name() for h in root.handlers].count("mailramp") == 1
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_health_during_a_rolling_deploy(tmp_path: Path) -> None:
    """A schema newer than the code (a rolling deploy migrated it) keeps the old process
    serving: 200, schema_newer. A schema behind the code cannot be served: 503."""
    from sqlalchemy import text

    from mailramp.config import Settings
    from mailramp.runtime import open_runtime
    from mailramp.web.health import health_report

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_key_file=tmp_path / "mailramp.key",
    )
    runtime = await open_runtime(settings)
    try:

        async def stamp(revision: str) -> None:
            async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
                await connection.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
                )

        await stamp("0099_from_the_future")
        status, body = await health_report(runtime)
        assert status == 200 and body["status"] == "ok"
        assert body["database"]["schema_newer"] is True
        assert body["database"]["up_to_date"] is False
        await stamp("0005_auth")
        status, body = await health_report(runtime)
        assert status == 503 and body["status"] == "schema_out_of_date"
        assert body["database"]["schema_newer"] is False
    finally:
        await runtime.close()


def test_the_access_log_is_redacted_when_another_asgi_server_runs_the_app(tmp_path: Path) -> None:
    """`uvicorn --factory mailramp.web.app:create_app` (not `mailramp serve`), with
    uvicorn's own logging: its access lines still carry no query values, no tracking token
    and no full client address."""
    import subprocess
    import sys

    port = free_port()
    environment = clean_environment(
        MAILRAMP_DATABASE_URL=f"sqlite:///{tmp_path / 'mailramp.db'}",
        MAILRAMP_ENCRYPTION_KEY_FILE=str(tmp_path / "mailramp.key"),
        MAILRAMP_RUN_WORKER="false",
    )
    command = ["-m", "uvicorn", "--factory", "mailramp.web.app:create_app", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, *command],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    token = "Q" * 40
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz?secret=canary-123")
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        httpx.get(f"http://127.0.0.1:{port}/t/c/{token}")
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    access = [line for line in output.splitlines() if '"GET /' in line]
    assert len(access) >= 2, output
    assert "canary-123" not in output and token not in output
    assert "127.0.0.1" not in "\n".join(access)
    assert any("/healthz?secret=[redacted]" in line for line in access), access
    assert any("/t/c/[token]" in line for line in access), access
