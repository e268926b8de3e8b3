"""SSRF: mailbox SMTP and IMAP hosts that point at this machine, the cloud metadata service
or a private network are refused at connect time — when sending, when reading the inbox and
in the mailbox test — unless the operator allows private hosts; the address checked is the
address connected to (no DNS rebinding), TLS still verifies the host name, DNS failures are
retried or named, and no password goes unencrypted to a public host.

Real parts: the worker and the inbox poller of a real runtime on SQLite, an SMTP server
(aiosmtpd) and Dovecot on loopback, the HTTP API through uvicorn. Two edges are played:
DNS (`socket.getaddrinfo`, the resolver every client in the process uses, answers `*.test`
names as each test says, one answer per lookup), and the internet, which tests cannot reach:
a process-wide audit hook sees every TCP connect and refuses those to public addresses, as
a network without a route would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import ipaddress
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailramp.accounts.models import User
from mailramp.config import Settings
from mailramp.kit.network import is_public_address
from mailramp.kit.secrets import generate_key
from mailramp.mailboxes.models import Mailbox, MailboxStatus
from mailramp.runtime import Runtime, open_runtime
from mailramp.tracking.models import EmailTracking, TrackingStatus
from mailramp.tracking.repository import RecipientQuery
from mailramp.web.app import create_app
from tests.support.dovecot import Dovecot
from tests.support.postgres import free_port
from tests.support.scenario import make_due_now
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.reliability

PASSWORD = "mailbox-password-1"
PUBLIC = "93.184.215.14"  # a public address; the test network never reaches it
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
PINNED = "mail.pinned.test"  # the name the servers' certificate is for
REAL_GETADDRINFO = socket.getaddrinfo
GAI_MESSAGES = {
    socket.EAI_AGAIN: "Temporary failure in name resolution",
    socket.EAI_NONAME: "Name or service not known",
}

# Literal addresses and names resolving to them: loopback, metadata, private, unique local,
# IPv4 inside IPv6 (mapped, 6to4, NAT64), shared, link-local, multicast, unspecified.
FORBIDDEN_LITERALS = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "169.254.169.254",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.10",
    "fc00::1",
    "fd00:ec2::254",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",
    "64:ff9b::a9fe:a9fe",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104 - an address to refuse, not one to listen on
    "::",
    "224.0.0.1",
]
FORBIDDEN_NAMES = {
    "metadata.test": ["169.254.169.254"],
    "intranet.test": ["10.0.0.5"],
    "router.test": ["192.168.0.1"],
    "loopback6.test": ["::1"],
    "mapped.test": ["::ffff:10.0.0.5"],
    # Public first, private second: one bad address is enough to refuse the name.
    "mixed.test": [PUBLIC, "127.0.0.1"],
    "mixed6.test": [PUBLIC_V6, "fd12:3456::1"],
}


# -- the DNS and the network the tests control -------------------------------------------------


@dataclass
class Resolver:
    """Answers for `*.test` names, one per lookup (the last one repeats); an answer is a list
    of addresses or a getaddrinfo error code. Other names go to the real resolver."""

    script: dict[str, list[list[str] | int]] = field(default_factory=dict)
    lookups: Counter[str] = field(default_factory=Counter)

    def answer(self, name: str, *answers: list[str] | int) -> None:
        self.script[name] = list(answers)

    def __call__(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or not name.endswith(".test"):
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)
        self.lookups[name] += 1
        answers = self.script.get(name) or [socket.EAI_NONAME]
        answer = answers[0] if len(answers) == 1 else answers.pop(0)
        if isinstance(answer, int):
            raise socket.gaierror(answer, GAI_MESSAGES[answer])
        port_number = int(port or 0)
        infos: list[tuple[Any, ...]] = []
        for address in answer:
            if ":" in address:
                sockaddr: tuple[Any, ...] = (address, port_number, 0, 0)
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", sockaddr))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port_number)))
        return infos


@dataclass
class Network:
    """Every TCP connect of this process while a test runs, by (address, port); connects to
    public addresses are refused (the test machine has no route to the internet)."""

    connects: list[tuple[str, int]] = field(default_factory=list)

    def to_port(self, port: int) -> list[str]:
        return [address for address, to in self.connects if to == port]


_network: Network | None = None
_audit_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    network = _network
    if network is None or event != "socket.connect":
        return
    address = args[1]
    if not isinstance(address, tuple) or not isinstance(address[0], str):
        return  # a Unix socket
    network.connects.append((address[0], int(address[1])))
    if is_public_address(ipaddress.ip_address(address[0].split("%")[0])):
        raise ConnectionRefusedError(111, "Connection refused (no route out of the test network)")


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


@pytest.fixture
def network() -> Iterator[Network]:
    global _network, _audit_installed
    if not _audit_installed:  # audit hooks stay for the life of the process: add it once
        sys.addaudithook(_audit)
        _audit_installed = True
    _network = Network()
    try:
        yield _network
    finally:
        _network = None


# -- servers: SMTP and IMAP on loopback, with a certificate for mail.pinned.test only ------------


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path


def certificate_for(directory: Path, name: str) -> Certificate:
    """A self-signed certificate valid for `name` only (not for 127.0.0.1 or localhost)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@dataclass
class Servers:
    certificate: Certificate
    smtp: SmtpServer  # plain or STARTTLS
    smtps: SmtpServer  # implicit TLS
    imap: Dovecot  # plain or STARTTLS on .port, implicit TLS on .tls_port

    def clear(self) -> None:
        for server in (self.smtp, self.smtps):
            with server.inbox.lock:
                server.inbox.messages.clear()
                server.inbox.logins.clear()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    certificate = certificate_for(tmp_path_factory.mktemp("pinned"), PINNED)
    context = _server_context(certificate)
    accounts = {"ann@acme.com": PASSWORD}
    smtp = SmtpServer(accounts, starttls=context).start()
    smtps = SmtpServer(accounts, implicit_tls=_server_context(certificate)).start()
    imap = Dovecot.start(accounts, cert_file=certificate.cert_file, key_file=certificate.key_file)
    try:
        yield Servers(certificate, smtp, smtps, imap)
    finally:
        smtp.stop()
        smtps.stop()
        imap.stop()


def _server_context(certificate: Certificate) -> Any:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    return context


@pytest.fixture
def trusted(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> Servers:
    """The servers, with their certificate trusted as an operator trusts a private CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(servers.certificate.cert_file))
    servers.clear()
    return servers


# -- mailramp: a runtime on SQLite, campaigns of one recipient, due now ----------------------


def fresh_database(directory: Path, sqlite_template: Path) -> str:
    """The URL of a new SQLite database in `directory`, a copy of the migrated template."""
    directory.mkdir(exist_ok=True)
    database = directory / "mailramp.db"
    database.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{database}"


@contextlib.asynccontextmanager
async def mailramp(
    tmp_path: Path, sqlite_template: Path, **settings: Any
) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(
        Settings(
            database_url=fresh_database(tmp_path, sqlite_template),
            encryption_keys=generate_key(),
            **settings,
        )
    )
    try:
        yield runtime
    finally:
        await runtime.close()


async def owner(runtime: Runtime) -> User:
    return await runtime.accounts.create_user(user_name="Ann", login_id="ann")


async def sending_mailbox(
    runtime: Runtime, user: User, number: int, **fields: Any
) -> tuple[Mailbox, str]:
    """An SMTP mailbox with a campaign of one recipient; the campaign's id."""
    mailbox = await runtime.mailboxes.create_mailbox(
        user.user_id,
        email=f"ann{number}@acme.com",
        provider="smtp",
        smtp_username="ann@acme.com",
        password=PASSWORD,
        **fields,
    )
    campaign = await runtime.campaigns.create_campaign(
        user.user_id,
        mailbox_id=mailbox.mailbox_id,
        campaign_name=f"From mailbox {number}",
        subject="Hello",
        message="Hello there",
        duration=4,
        start_time=runtime.clock() - timedelta(minutes=5),
    )
    await runtime.sending.import_recipients(
        user.user_id, campaign.campaign_id, io.BytesIO(f"email\nbo{number}@example.com\n".encode())
    )
    return mailbox, campaign.campaign_id


async def send_due(runtime: Runtime) -> None:
    """Make every record due and let a worker do one pass, as `mailramp worker` would."""
    await make_due_now(runtime)
    worker = runtime.worker()
    try:
        await worker.tick()
    finally:
        await worker.close()


async def seen_by_user(runtime: Runtime, user: User, mailbox: Mailbox) -> Mailbox:
    return await runtime.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)


async def record_of(runtime: Runtime, user: User, campaign_id: str) -> EmailTracking:
    page = await runtime.store.list_tracking(
        user.user_id, RecipientQuery(campaign_id, status=None, offset=0, limit=10)
    )
    (record,) = page.items
    return record


# -- the sending path ----------------------------------------------------------------------


async def test_sending_refuses_every_private_host_before_connecting(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, network: Network, trusted: Servers
) -> None:
    for name, addresses in FORBIDDEN_NAMES.items():
        resolver.answer(name, addresses)
    hosts = FORBIDDEN_LITERALS + list(FORBIDDEN_NAMES)
    port = trusted.smtps.port
    async with mailramp(tmp_path, sqlite_template) as runtime:
        user = await owner(runtime)
        boxes = [
            await sending_mailbox(
                runtime, user, n, smtp_host=host, smtp_port=port, smtp_security="tls"
            )
            for n, host in enumerate(hosts)
        ]
        await send_due(runtime)
        for host, (mailbox, campaign_id) in zip(hosts, boxes, strict=True):
            seen = await seen_by_user(runtime, user, mailbox)
            assert seen.status is MailboxStatus.ERROR, host
            assert seen.status_reason is not None
            assert f"{host!r} resolves to " in seen.status_reason
            assert "MAILRAMP_ALLOW_PRIVATE_HOSTS" in seen.status_reason
            record = await record_of(runtime, user, campaign_id)
            assert record.status is TrackingStatus.PENDING, host  # waits for the owner
            assert record.sent_at is None
    assert network.to_port(port) == []  # not one connection was even attempted
    assert trusted.smtps.inbox.messages == []
    assert len(hosts) == 26


async def test_the_operator_can_allow_private_hosts(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, network: Network, trusted: Servers
) -> None:
    resolver.answer(PINNED, ["127.0.0.1"])
    async with mailramp(tmp_path, sqlite_template, allow_private_hosts=True) as runtime:
        user = await owner(runtime)
        mailbox, campaign_id = await sending_mailbox(
            runtime, user, 1, smtp_host=PINNED, smtp_port=trusted.smtps.port, smtp_security="tls"
        )
        await send_due(runtime)
        assert (await seen_by_user(runtime, user, mailbox)).status is MailboxStatus.ACTIVE
        assert (await record_of(runtime, user, campaign_id)).status is TrackingStatus.SENT
    assert [m["To"] for m in (r.message for r in trusted.smtps.inbox.messages)] == [
        "bo1@example.com"
    ]
    assert network.to_port(trusted.smtps.port) == ["127.0.0.1"]


async def test_sending_connects_to_the_address_it_checked_not_a_rebound_one(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, network: Network, trusted: Servers
) -> None:
    # A rebinding DNS server: public for the check, loopback (where a server with a valid
    # certificate for the name listens) for every lookup after it.
    resolver.answer(PINNED, [PUBLIC], ["127.0.0.1"])
    async with mailramp(tmp_path, sqlite_template) as runtime:
        user = await owner(runtime)
        mailbox, campaign_id = await sending_mailbox(
            runtime, user, 1, smtp_host=PINNED, smtp_port=trusted.smtps.port, smtp_security="tls"
        )
        await send_due(runtime)
        record = await record_of(runtime, user, campaign_id)
        seen = await seen_by_user(runtime, user, mailbox)
    assert resolver.lookups[PINNED] == 1  # resolved once, connected to what was checked
    assert network.to_port(trusted.smtps.port) == [PUBLIC]
    assert trusted.smtps.inbox.messages == [] and trusted.smtps.inbox.logins == []
    # Unreachable is a transient failure: the record is retried later, the mailbox stays.
    assert record.status is TrackingStatus.PENDING and record.attempts == 1
    assert record.last_error is not None and PUBLIC in record.last_error
    assert seen.status is MailboxStatus.ACTIVE


async def test_tls_verifies_the_host_name_on_the_pinned_address(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, trusted: Servers
) -> None:
    # Both names resolve to the servers' address; their certificate names only one.
    resolver.answer(PINNED, ["127.0.0.1"])
    resolver.answer("impostor.test", ["127.0.0.1"])
    async with mailramp(tmp_path, sqlite_template, allow_private_hosts=True) as runtime:
        user = await owner(runtime)
        answers = {}
        for n, (host, smtp, imap) in enumerate(
            [
                (PINNED, "starttls", "starttls"),
                (PINNED, "tls", "tls"),
                ("impostor.test", "starttls", "starttls"),
                ("impostor.test", "tls", "tls"),
            ]
        ):
            smtp_port = trusted.smtp.port if smtp == "starttls" else trusted.smtps.port
            imap_port = trusted.imap.port if imap == "starttls" else trusted.imap.tls_port
            mailbox, _ = await sending_mailbox(
                runtime,
                user,
                n,
                smtp_host=host,
                smtp_port=smtp_port,
                smtp_security=smtp,
                imap_host=host,
                imap_port=imap_port,
                imap_security=imap,
            )
            answers[(host, smtp)] = await runtime.check_mailbox(user.user_id, mailbox.mailbox_id)
    for security in ("starttls", "tls"):
        assert answers[(PINNED, security)] == {"smtp": {"ok": True}, "imap": {"ok": True}}
        refused = answers[("impostor.test", security)]
        for part in ("smtp", "imap"):
            assert refused[part]["ok"] is False
            assert "certificate verify failed" in str(refused[part]["error"]), refused
    assert trusted.smtp.inbox.logins == trusted.smtps.inbox.logins == ["ann@acme.com"]


async def test_dns_failures_retry_or_name_the_host(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, trusted: Servers
) -> None:
    # The resolver times out once, then answers; another name does not exist at all.
    resolver.answer(PINNED, socket.EAI_AGAIN, ["127.0.0.1"])
    resolver.answer("no-such-host.test", socket.EAI_NONAME)
    async with mailramp(tmp_path, sqlite_template, allow_private_hosts=True) as runtime:
        user = await owner(runtime)
        flaky, flaky_campaign = await sending_mailbox(
            runtime, user, 1, smtp_host=PINNED, smtp_port=trusted.smtps.port, smtp_security="tls"
        )
        typo, typo_campaign = await sending_mailbox(
            runtime, user, 2, smtp_host="no-such-host.test", smtp_security="tls"
        )
        await send_due(runtime)
        record = await record_of(runtime, user, flaky_campaign)
        assert record.status is TrackingStatus.PENDING and record.attempts == 1
        assert record.last_error == (
            "cannot resolve 'mail.pinned.test' right now "
            "(DNS: Temporary failure in name resolution); will try again"
        )
        assert (await seen_by_user(runtime, user, flaky)).status is MailboxStatus.ACTIVE
        seen = await seen_by_user(runtime, user, typo)
        assert seen.status is MailboxStatus.ERROR
        assert seen.status_reason == (
            "the host 'no-such-host.test' does not exist (DNS: Name or service not known)"
        )
        assert (await record_of(runtime, user, typo_campaign)).sent_at is None

        await send_due(runtime)  # the retry, once DNS answers again
        assert (await record_of(runtime, user, flaky_campaign)).status is TrackingStatus.SENT
    assert [str(r.message["To"]) for r in trusted.smtps.inbox.messages] == ["bo1@example.com"]


async def test_no_password_in_clear_to_a_public_host(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, network: Network, trusted: Servers
) -> None:
    resolver.answer("smtp.public.test", [PUBLIC])
    port = trusted.smtp.port
    async with mailramp(tmp_path, sqlite_template) as runtime:
        user = await owner(runtime)
        mailbox, campaign_id = await sending_mailbox(
            runtime, user, 1, smtp_host="smtp.public.test", smtp_port=port, smtp_security="plain"
        )
        await send_due(runtime)
        seen = await seen_by_user(runtime, user, mailbox)
        assert seen.status is MailboxStatus.ERROR
        assert seen.status_reason == (
            "refusing to send the password to 'smtp.public.test' unencrypted: the mailbox's "
            "transport is `plain` and the host is on the public internet; use `starttls` or "
            "`tls` (or set MAILRAMP_ALLOW_CLEARTEXT_LOGIN=true)"
        )
        assert (await record_of(runtime, user, campaign_id)).status is TrackingStatus.PENDING
    assert network.to_port(port) == []

    # Allowed by the operator, the connection is made (and fails: the test has no internet).
    async with mailramp(tmp_path / "allowed", sqlite_template, allow_cleartext_login=True) as rt:
        user = await owner(rt)
        mailbox, campaign_id = await sending_mailbox(
            rt, user, 1, smtp_host="smtp.public.test", smtp_port=port, smtp_security="plain"
        )
        await send_due(rt)
        assert (await seen_by_user(rt, user, mailbox)).status is MailboxStatus.ACTIVE
        assert (await record_of(rt, user, campaign_id)).attempts == 1
    assert network.to_port(port) == [PUBLIC]


# -- the inbox path --------------------------------------------------------------------------


async def inbox_mailbox(runtime: Runtime, user: User, number: int, **fields: Any) -> Mailbox:
    return await runtime.mailboxes.create_mailbox(
        user.user_id,
        email=f"ann{number}@acme.com",
        provider="smtp",
        smtp_host="smtp.public.test",
        imap_username="ann@acme.com",
        password=PASSWORD,
        **fields,
    )


async def poll(runtime: Runtime) -> None:
    await runtime.inbox_poller().poll_once()


async def test_inbox_polling_refuses_private_hosts_and_rebinding(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, network: Network, trusted: Servers
) -> None:
    for name, addresses in FORBIDDEN_NAMES.items():
        resolver.answer(name, addresses)
    resolver.answer(PINNED, [PUBLIC], ["127.0.0.1"])  # rebinding after the check
    resolver.answer("flaky.test", socket.EAI_AGAIN)
    resolver.answer("no-such-host.test", socket.EAI_NONAME)
    resolver.answer("imap.public.test", [PUBLIC])
    port = trusted.imap.tls_port
    assert port is not None
    forbidden = FORBIDDEN_LITERALS + list(FORBIDDEN_NAMES)
    imap_log = trusted.imap.root / "dovecot.log"
    logged_before = len(imap_log.read_text())
    async with mailramp(tmp_path, sqlite_template) as runtime:
        user = await owner(runtime)
        boxes = {
            host: await inbox_mailbox(
                runtime, user, n, imap_host=host, imap_port=port, imap_security="tls"
            )
            for n, host in enumerate([*forbidden, PINNED, "flaky.test", "no-such-host.test"])
        }
        in_clear = await inbox_mailbox(
            runtime, user, 99, imap_host="imap.public.test", imap_port=port, imap_security="plain"
        )
        await poll(runtime)
        for host in forbidden:
            seen = await seen_by_user(runtime, user, boxes[host])
            assert seen.status is MailboxStatus.ERROR, host
            assert seen.status_reason is not None
            assert seen.status_reason.startswith(f"inbox: {host!r} resolves to ")
        # Rebinding: one lookup, the connection went to the public address it checked.
        assert resolver.lookups[PINNED] == 1
        assert network.to_port(port) == [PUBLIC]
        for host in (PINNED, "flaky.test"):  # unreachable or DNS down for now: retried later
            seen = await seen_by_user(runtime, user, boxes[host])
            assert (seen.status, seen.status_reason) == (MailboxStatus.ACTIVE, None), host
        seen = await seen_by_user(runtime, user, boxes["no-such-host.test"])
        assert seen.status_reason == (
            "inbox: the host 'no-such-host.test' does not exist (DNS: Name or service not known)"
        )
        seen = await seen_by_user(runtime, user, in_clear)
        assert seen.status is MailboxStatus.ERROR
        assert seen.status_reason is not None
        assert seen.status_reason.startswith(
            "inbox: refusing to send the password to 'imap.public.test' unencrypted"
        )
    assert "Login: user=" not in imap_log.read_text()[logged_before:]  # no IMAP login at all


# -- the mailbox test endpoint, through the HTTP API -----------------------------------------


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app under uvicorn in this process (so it shares the tests' DNS), and a client."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def test_the_mailbox_test_endpoint_refuses_private_hosts(
    tmp_path: Path, sqlite_template: Path, resolver: Resolver, network: Network, trusted: Servers
) -> None:
    resolver.answer("metadata.test", ["169.254.169.254"])
    resolver.answer(PINNED, [PUBLIC], [PUBLIC], ["127.0.0.1"])  # one lookup per part
    settings = Settings(
        database_url=fresh_database(tmp_path, sqlite_template),
        encryption_keys=generate_key(),
        run_worker=False,
    )
    async with served(settings) as client:
        signup = await client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Ann", "login_id": "ann", "password": "a long password"},
        )
        assert signup.status_code == 201, signup.text
        headers = {"X-CSRF-Token": signup.json()["csrf_token"]}
        results = {}
        for host, imap_host in [
            ("metadata.test", "::ffff:127.0.0.1"),
            ("10.0.0.1", "metadata.test"),
            (PINNED, PINNED),
        ]:
            linked = await client.post(
                "/api/v1/mailboxes",
                headers=headers,
                json={
                    "email": f"ann@{host.replace(':', '-')}.example.com",
                    "provider": "smtp",
                    "smtp_host": host,
                    "smtp_port": trusted.smtps.port,
                    "smtp_security": "tls",
                    "smtp_username": "ann@acme.com",
                    "imap_host": imap_host,
                    "imap_port": trusted.imap.tls_port,
                    "imap_security": "tls",
                    "password": PASSWORD,
                },
            )
            assert linked.status_code == 201, linked.text
            tested = await client.post(
                f"/api/v1/mailboxes/{linked.json()['mailbox_id']}/test", headers=headers
            )
            assert tested.status_code == 200, tested.text
            results[host] = tested.json()
    metadata = "'metadata.test' resolves to 169.254.169.254, a loopback, private, link-local"
    assert results["metadata.test"]["smtp"]["ok"] is False
    assert results["metadata.test"]["smtp"]["error"].startswith(metadata)
    mapped = results["metadata.test"]["imap"]["error"]
    assert mapped.startswith("'::ffff:127.0.0.1' resolves to ::ffff:") and "(127.0.0.1)" in mapped
    assert results["10.0.0.1"]["smtp"]["error"].startswith("'10.0.0.1' resolves to 10.0.0.1")
    assert results["10.0.0.1"]["imap"]["error"].startswith(metadata)
    for part in ("smtp", "imap"):  # rebinding: the public address checked, and unreachable
        assert results[PINNED][part]["ok"] is False
        assert PUBLIC in results[PINNED][part]["error"]
    assert network.to_port(trusted.smtps.port) == [PUBLIC]
    assert network.to_port(trusted.imap.tls_port or 0) == [PUBLIC]
