"""Operating mailramp: Prometheus metrics, the health report, a small health server for
processes without the web app (`mailramp worker`), and log lines as text or JSON.

Each Runtime has its own `Telemetry`: metric objects in a `CollectorRegistry` of their own,
never prometheus_client's global one, so several apps in one process (as in the tests)
neither collide nor mix their numbers. docs/observability.md lists every metric.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from mailramp import __version__
from mailramp.config import Settings
from mailramp.deliverability.service import MailboxGauges
from mailramp.sending.models import Outcome
from mailramp.tracking.events import EVENT_SOURCES, EventSource
from mailramp.tracking.models import EventType

if TYPE_CHECKING:
    from mailramp.storage import Store

log = logging.getLogger(__name__)

# No `*_created` series (a creation timestamp beside every counter and histogram): they
# double the exposition and Prometheus does not need them. A process-wide switch — the
# process is mailramp's.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in 0.26

DATABASE_TIMEOUT_SECONDS = 5.0
"""A database that does not answer /healthz's or /metrics' query within this is reported
unreachable (well inside Prometheus' default 10-second scrape timeout)."""

# Claims are one short transaction (milliseconds); a send is an SMTP or HTTP exchange.
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Telemetry:
    """The metrics of one running mailramp. It is the `WorkerMetrics` of the sending worker
    and the `EventMetrics` of tracking; the queue depth is read from the database at each
    scrape."""

    def __init__(self, *, schema: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._sends = Counter(
            "mailramp_sends",
            "Send attempts by this process's worker, by outcome.",
            ["result"],
            registry=registry,
        )
        self._events = Counter(
            "mailramp_tracking_events",
            "Tracking events recorded by this process: opens, clicks and unsubscribes from "
            "tracking links (by a person or a machine), replies and bounces from inboxes.",
            ["event", "source"],
            registry=registry,
        )
        self._queue = Gauge(
            "mailramp_queue_depth",
            "Send queue records over all users, read from the database at scrape time: "
            "due (a worker could claim them now) and sending (being handed over).",
            ["state"],
            registry=registry,
        )
        self._mailbox_gauges = {
            name: Gauge(
                f"mailramp_mailbox_{name}",
                help_text,
                ["mailbox_id"],
                registry=registry,
            )
            for name, help_text in MAILBOX_GAUGES.items()
        }
        self._claims = Histogram(
            "mailramp_claim_latency_seconds",
            "How long this process's worker took to lease due records (one transaction).",
            buckets=CLAIM_BUCKETS,
            registry=registry,
        )
        self._send_durations = Histogram(
            "mailramp_send_duration_seconds",
            "How long handing one message to its provider took.",
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        Info(
            "mailramp_build",
            "The running mailramp: its version, and the schema revision its code expects.",
            registry=registry,
        ).info({"version": __version__, "schema": schema})
        ProcessCollector(registry=registry)
        for outcome in Outcome:
            self._sends.labels(result=outcome.value)
        for event, sources in EVENT_SOURCES.items():
            for source in sources:
                self._events.labels(event=event.value, source=source)

    def observe_claim(self, seconds: float) -> None:
        """One claim transaction took `seconds`."""
        self._claims.observe(seconds)

    def observe_send(self, seconds: float) -> None:
        """Handing one message to its provider took `seconds`."""
        self._send_durations.observe(seconds)

    def count_outcome(self, outcome: Outcome) -> None:
        """One record's send attempt ended in `outcome`."""
        self._sends.labels(result=outcome.value).inc()

    def count_event(self, event: EventType, *, source: EventSource) -> None:
        """One tracking event was recorded."""
        self._events.labels(event=event.value, source=source).inc()

    async def exposition(
        self,
        store: Store,
        *,
        now: datetime,
        mailboxes: Callable[[], Awaitable[list[MailboxGauges]]] | None = None,
    ) -> bytes:
        """Every metric in the Prometheus text format, with the queue depth read now (and
        each linked mailbox's health, when `mailboxes` reads it)."""
        if mailboxes is not None:
            await self._read_mailboxes(mailboxes)
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
                depth = await store.queue_depth(now=now)
        except Exception as error:
            # The other metrics still help when the database is down; a missing
            # queue-depth series says so (alert on absent()), a stale number would not.
            log.warning("metrics: cannot read the queue depth: %s", describe_error(error))
            self._queue.clear()
        else:
            for state in QUEUE_STATES:
                self._queue.labels(state=state).set(getattr(depth, state))
        return generate_latest(self.registry)

    async def _read_mailboxes(
        self, mailboxes: Callable[[], Awaitable[list[MailboxGauges]]]
    ) -> None:
        for gauge in self._mailbox_gauges.values():
            gauge.clear()
        try:
            async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
                readings = await mailboxes()
        except Exception as error:
            log.warning("metrics: cannot read the mailboxes' health: %s", describe_error(error))
            return
        for reading in readings:
            labels = {"mailbox_id": reading.mailbox_id}
            self._mailbox_gauges["daily_limit"].labels(**labels).set(reading.limit_today)
            self._mailbox_gauges["sent_today"].labels(**labels).set(reading.sent_today)
            self._mailbox_gauges["braked"].labels(**labels).set(int(reading.braked))
            if reading.inbox_placement is not None:
                placement = self._mailbox_gauges["inbox_placement_percent"]
                placement.labels(**labels).set(reading.inbox_placement)


QUEUE_STATES = ("due", "sending")
"""The `state` values of `mailramp_queue_depth` (fields of the depth read at a scrape)."""

MAILBOX_GAUGES = {
    "daily_limit": "Each linked mailbox's daily limit today (its ramp's while it ramps up).",
    "sent_today": "Emails each linked mailbox sent today (UTC), campaigns and warm-up, as "
    "last rolled up.",
    "inbox_placement_percent": "Each linked mailbox's warm-up emails found in the inbox "
    "over the last 7 days, in percent (its health score; absent before any was found).",
    "braked": "1 while a brake holds each linked mailbox's campaign sends.",
}


def describe_error(error: BaseException) -> str:
    # The first line only: SQLAlchemy appends the statement and a link on the next ones.
    first_line = str(error).strip().split("\n", 1)[0]
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


# -- logs ----------------------------------------------------------------------------------

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "mailramp"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}


class AccessLogRedaction(logging.Filter):
    """Keeps credentials and full client addresses out of uvicorn's access log, which
    otherwise writes every request's client address, path and query string: query values
    become `[redacted]` (an OAuth callback's `code` and `state`, any token a client put in a
    URL), tracking tokens in `/t/o|c|u/<token>` become `[token]` (one is enough to record a
    click or unsubscribe its recipient), and client addresses are cut to their network
    (IPv4 /24, IPv6 /48), without the port."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access line: '%s - "%s %s HTTP/%s" %d' (client, method, target, version,
        # status); anything else passes as it is.
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, target, version, status = args
            record.args = (
                redact_client(str(client)),
                method,
                redact_target(str(target)),
                version,
                status,
            )
        return True


_TRACKING_TOKEN = re.compile(r"^(/t/[ocu]/)[^/]+")


def redact_target(target: str) -> str:
    """A request target (path and query string) fit for a log line: no tracking token, no
    query value."""
    path, question, query = target.partition("?")
    path = _TRACKING_TOKEN.sub(r"\1[token]", path)
    if not question:
        return path
    parts = [part.partition("=") for part in query.split("&") if part]
    return (
        path + "?" + "&".join(name + ("=[redacted]" if equals else "") for name, equals, _ in parts)
    )


def redact_client(client: str) -> str:
    """A client address as uvicorn writes it (`host:port`) cut to its network, without the
    port: 203.0.113.0, 2001:db8:1::."""
    host, _, port = client.rpartition(":")
    if not port.isdigit():
        host = client
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "-" if client else ""  # a Unix socket: nothing to cut, nothing to show
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


ACCESS_LOG_REDACTION = AccessLogRedaction(name="mailramp-redaction")

# Libraries whose DEBUG lines write what mailramp must not log: aiosqlite logs every call
# it runs for SQLAlchemy with the statement's parameters (message texts, recipients, and
# the values of any column), at a volume no one reads. SQLAlchemy's own statement log
# (logger sqlalchemy.engine) stays available for investigating.
QUIET_LIBRARIES = {"aiosqlite": logging.INFO}


def install_log_redaction() -> None:
    """Put the access log's redaction on uvicorn's access logger (once) and keep the
    libraries of QUIET_LIBRARIES above their debug level, whatever the root level."""
    access = logging.getLogger("uvicorn.access")
    if ACCESS_LOG_REDACTION not in access.filters:
        access.addFilter(ACCESS_LOG_REDACTION)
    for name, level in QUIET_LIBRARIES.items():
        library = logging.getLogger(name)
        if library.level == logging.NOTSET or library.level < level:
            library.setLevel(level)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO-8601, UTC), level, logger, message, then the
    record's `extra=` fields, and `exception` with the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a SecretStr shows as its mask, a datetime as its text.
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record at the settings' level or above to stderr (or `stream`) as
    text or JSON lines (MAILRAMP_LOG_FORMAT). Calling it again replaces the handler it
    installed before and leaves other handlers alone."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    formatter = JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    install_log_redaction()
    return handler
