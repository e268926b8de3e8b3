"""An SMTP server on loopback (aiosmtpd) that misbehaves on purpose, the way real servers
do: it answers 421 or 451, drops the connection after a message's content without
answering, and stalls (accepts a connection or a command and never answers). It keeps the
messages it accepted, and logs every fault it injected and how long each stall held the
client, so a test can hold the sender to the rules exchange by exchange.

Faults come from a plan: chosen recipients get a given fault on their first attempt (so a
campaign of a few hundred is sure to meet every kind), the other attempts draw 421/451 at
random from a seeded generator, and chosen connections stall or answer 421 at the greeting.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from enum import StrEnum
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.support.postgres import free_port
from tests.support.smtp import Inbox, Received


class Fault(StrEnum):
    """What the server did to one exchange."""

    GREETING_STALL = "greeting_stall"  # connection accepted, no 220 ever
    GREETING_421 = "greeting_421"  # 421 instead of the greeting, then closed
    RCPT_421 = "rcpt_421"  # 421 to RCPT TO, then closed
    RCPT_451 = "rcpt_451"  # 451 to RCPT TO
    RCPT_STALL = "rcpt_stall"  # RCPT TO read, never answered
    DATA_421 = "data_421"  # 421 after the content, then closed (not kept)
    DATA_451 = "data_451"  # 451 after the content (not kept)
    DROP_AFTER_DATA = "drop_after_data"  # content read, connection closed, no reply
    STALL_AFTER_DATA = "stall_after_data"  # content read, never answered


TRANSIENT = frozenset(
    {
        Fault.GREETING_STALL,
        Fault.GREETING_421,
        Fault.RCPT_421,
        Fault.RCPT_451,
        Fault.RCPT_STALL,
        Fault.DATA_421,
        Fault.DATA_451,
    }
)
"""Faults that leave the sender certain the message was not taken: retried later."""
UNCERTAIN = frozenset({Fault.DROP_AFTER_DATA, Fault.STALL_AFTER_DATA})
"""Faults after the content went over with no answer: the message may have been taken."""
STALLS = frozenset({Fault.GREETING_STALL, Fault.RCPT_STALL, Fault.STALL_AFTER_DATA})
RCPT_FAULTS = frozenset({Fault.RCPT_421, Fault.RCPT_451, Fault.RCPT_STALL})
DATA_FAULTS = frozenset({Fault.DATA_421, Fault.DATA_451, *UNCERTAIN})


@dataclass
class FaultPlan:
    """Which faults to inject. Probabilities are per attempt of a recipient without a
    planned fault; `first_attempt` gives chosen recipients a fault on their first attempt;
    `always` refuses chosen recipients with 451 on every attempt; `greetings` maps the
    n-th connection (1-based) to a greeting fault."""

    seed: int = 0
    rcpt_421: float = 0.0
    rcpt_451: float = 0.0
    data_421: float = 0.0
    data_451: float = 0.0
    first_attempt: dict[str, Fault] = field(default_factory=dict)
    kept: frozenset[str] = frozenset()
    """Recipients whose message the server keeps when it drops or stalls after DATA (it
    took the message, then failed to say so); the others' messages are lost."""
    always: frozenset[str] = frozenset()
    greetings: dict[int, Fault] = field(default_factory=dict)


@dataclass
class Exchange:
    """One fault the server injected."""

    fault: Fault
    recipient: str | None  # None for greeting faults
    connection: int
    kept: bool = False
    held_seconds: float | None = None
    """For a stall: from the moment the server stopped answering until the client hung up."""


class FaultLog:
    """Everything the server did wrong, and every content transfer it saw, per recipient."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: list[Exchange] = []
        self.attempts: dict[str, int] = defaultdict(int)
        """RCPT TO commands seen per recipient (one per send attempt that got that far)."""
        self.accepted: dict[str, int] = defaultdict(int)
        """Messages answered 250 after their content, per recipient."""
        self.connections = 0
        self.stalling = threading.Event()
        """Set when a stall begins (a test can act while the client is held)."""

    def by_recipient(self) -> dict[str, list[Exchange]]:
        with self.lock:
            grouped: dict[str, list[Exchange]] = defaultdict(list)
            for exchange in self.faults:
                if exchange.recipient is not None:
                    grouped[exchange.recipient].append(exchange)
            return dict(grouped)

    def of_kind(self, *kinds: Fault) -> list[Exchange]:
        with self.lock:
            return [exchange for exchange in self.faults if exchange.fault in kinds]


class _Handler:
    def __init__(self, server: FaultySmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        server = self.server
        fault = server.decide(address, RCPT_FAULTS)
        connection = getattr(session, "connection_number", 0)
        if fault is Fault.RCPT_STALL:
            await server.stall(Exchange(fault, address, connection))
        if fault is not None:
            server.log_fault(Exchange(fault, address, connection))
            if fault is Fault.RCPT_421:
                return _reply_and_close(smtp, "421 4.3.2 Service shutting down, try again later")
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        server = self.server
        recipient = envelope.rcpt_tos[0]
        connection = getattr(session, "connection_number", 0)
        fault = server.decide(recipient, DATA_FAULTS)
        exchange = Exchange(fault, recipient, connection) if fault else None
        if exchange is not None and fault in UNCERTAIN:
            exchange.kept = recipient in server.plan.kept
            if exchange.kept:
                server.keep(envelope)
            if fault is Fault.STALL_AFTER_DATA:
                await server.stall(exchange)
            server.log_fault(exchange)
            smtp.transport.close()  # no reply: the client sees the connection go
            return "250 never sent"
        if exchange is not None:
            server.log_fault(exchange)
            if fault is Fault.DATA_421:
                return _reply_and_close(smtp, "421 4.3.2 Service shutting down, try again later")
            return "451 4.3.0 Temporary failure, try again later"
        server.keep(envelope)
        with server.log.lock:
            server.log.accepted[recipient] += 1
        return "250 Message accepted for delivery"


def _reply_and_close(smtp: Any, reply: str) -> str:
    """Answer, then close at once (as a server shutting down does): the client reads the
    reply and then the end of the connection, never a reply to its next command."""
    smtp.transport.write(reply.encode("ascii") + b"\r\n")
    smtp.transport.close()
    return reply  # aiosmtpd's own write of it goes nowhere: the transport is closed


class _FaultySmtp(SMTP):
    """aiosmtpd's SMTP with a numbered connection whose greeting may stall or be a 421."""

    def __init__(self, server: FaultySmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server = server
        self._greeted = False
        self._number = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._number = self._server.count_connection()
        if self.session is not None:
            self.session.connection_number = self._number

    async def push(self, status: AnyStr) -> None:
        if not self._greeted:
            self._greeted = True
            fault = self._server.plan.greetings.get(self._number)
            if fault is Fault.GREETING_STALL:
                try:
                    await self._server.stall(Exchange(fault, None, self._number))
                finally:
                    # aiosmtpd closes a connection whose client left only once it is
                    # past the greeting; this one never gets there.
                    if self.transport is not None:
                        self.transport.close()
            if fault is Fault.GREETING_421:
                self._server.log_fault(Exchange(fault, None, self._number))
                _reply_and_close(self, "421 4.3.2 Too busy, try again later")
                return
        await super().push(status)


class _Controller(Controller):
    def __init__(self, server: FaultySmtpServer, **kwargs: Any) -> None:
        super().__init__(_Handler(server), **kwargs)
        self._server = server

    def factory(self) -> SMTP:
        return _FaultySmtp(self._server, self.handler, **self.SMTP_kwargs)


class FaultySmtpServer:
    """Started on a free loopback port; stop() when done. `inbox` holds what it kept
    (delivered), `log` what it did wrong."""

    def __init__(self, plan: FaultPlan, accounts: dict[str, str] | None = None) -> None:
        self.plan = plan
        self.inbox = Inbox(accounts=dict(accounts or {}))
        self.log = FaultLog()
        self.port = free_port()
        self._random = random.Random(plan.seed)
        self._armed = False
        self._controller = _Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            auth_require_tls=False,
            authenticator=self._authenticate,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        return AuthResult(
            success=self.inbox.accounts.get(login) == auth_data.password.decode(), handled=False
        )

    def count_connection(self) -> int:
        """Number this connection (the controller's own start-up probe is not counted)."""
        with self.log.lock:
            if not self._armed:
                return 0
            self.log.connections += 1
            return self.log.connections

    def decide(self, recipient: str, kinds: frozenset[Fault]) -> Fault | None:
        """The fault for this recipient's exchange at this step, if any."""
        plan = self.plan
        with self.log.lock:
            if Fault.RCPT_451 in kinds:
                self.log.attempts[recipient] += 1
            attempt = self.log.attempts[recipient]
            if recipient in plan.always:
                return Fault.RCPT_451 if Fault.RCPT_451 in kinds else None
            planned = plan.first_attempt.get(recipient)
            if planned is not None and attempt == 1:
                return planned if planned in kinds else None
            draw = self._random.random()
            if Fault.RCPT_451 in kinds:
                chances = [(Fault.RCPT_421, plan.rcpt_421), (Fault.RCPT_451, plan.rcpt_451)]
            else:
                chances = [(Fault.DATA_421, plan.data_421), (Fault.DATA_451, plan.data_451)]
            for fault, chance in chances:
                if draw < chance:
                    return fault
                draw -= chance
            return None

    def keep(self, envelope: Any) -> None:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.inbox.lock:
            self.inbox.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message)
            )

    def log_fault(self, exchange: Exchange) -> None:
        with self.log.lock:
            self.log.faults.append(exchange)

    async def stall(self, exchange: Exchange) -> None:
        """Never answer; when the client hangs up (this task is cancelled), log how long
        it waited."""
        started = time.monotonic()
        self.log.stalling.set()
        try:
            await asyncio.Event().wait()
        finally:
            exchange.held_seconds = time.monotonic() - started
            self.log_fault(exchange)

    def start(self) -> FaultySmtpServer:
        self._controller.start()
        with self.log.lock:
            self._armed = True
        return self

    def stop(self) -> None:
        self._controller.stop()
