"""The SMTP provider against real servers on loopback: STARTTLS, implicit TLS, plain,
one reused connection, and what each failure means."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailramp.errors import MailboxUnusableError, PermanentSendError, TransientSendError
from mailramp.mailboxes.models import TransportSecurity
from mailramp.providers.smtp import SmtpProvider
from tests.support.postgres import free_port
from tests.support.smtp import SmtpServer
from tests.support.tls import Certificate, self_signed


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Certificate:
    certificate = self_signed(tmp_path)
    # The client trusts it the way an operator would trust a private CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert_file))
    return certificate


def _message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ann@acme.com"
    message["To"] = to
    message["Subject"] = "TLS"
    message.set_content("over TLS")
    return message


@pytest.fixture
def starttls_server(certificate: Certificate) -> Iterator[SmtpServer]:
    server = SmtpServer({"ann@acme.com": "pw"}, starttls=certificate.server_context()).start()
    yield server
    server.stop()


@pytest.fixture
def implicit_tls_server(certificate: Certificate) -> Iterator[SmtpServer]:
    server = SmtpServer({"ann@acme.com": "pw"}, implicit_tls=certificate.server_context()).start()
    yield server
    server.stop()


def _provider(port: int, security: TransportSecurity, password: str = "pw") -> SmtpProvider:
    return SmtpProvider(
        host="127.0.0.1",
        port=port,
        security=security,
        username="ann@acme.com",
        password=password,
        allow_private_hosts=True,
        timeout=10,
    )


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_tls_modes_send_and_reuse_one_connection(
    mode: str, starttls_server: SmtpServer, implicit_tls_server: SmtpServer
) -> None:
    server = starttls_server if mode == "starttls" else implicit_tls_server
    security = TransportSecurity.STARTTLS if mode == "starttls" else TransportSecurity.TLS
    provider = _provider(server.port, security)
    try:
        for n in range(3):
            await provider.send(
                _message(f"r{n}@example.com"), sender="ann@acme.com", recipient=f"r{n}@example.com"
            )
    finally:
        await provider.close()
    assert len(server.inbox.messages) == 3
    assert server.inbox.logins == ["ann@acme.com"]  # one connection, one login


async def test_starttls_server_refuses_a_plain_client(starttls_server: SmtpServer) -> None:
    provider = _provider(starttls_server.port, TransportSecurity.PLAIN)
    with pytest.raises((MailboxUnusableError, TransientSendError, PermanentSendError)):
        await provider.send(
            _message("x@example.com"), sender="ann@acme.com", recipient="x@example.com"
        )
    await provider.close()
    assert starttls_server.inbox.messages == []


async def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    other = self_signed(tmp_path)  # not in SSL_CERT_FILE
    server = SmtpServer({"ann@acme.com": "pw"}, implicit_tls=other.server_context()).start()
    try:
        provider = _provider(server.port, TransportSecurity.TLS)
        with pytest.raises(TransientSendError, match="cannot connect"):
            await provider.send(
                _message("x@example.com"), sender="ann@acme.com", recipient="x@example.com"
            )
        await provider.close()
    finally:
        server.stop()
    assert server.inbox.messages == []


async def test_wrong_password_makes_the_mailbox_unusable(starttls_server: SmtpServer) -> None:
    provider = _provider(starttls_server.port, TransportSecurity.STARTTLS, password="wrong")
    with pytest.raises(MailboxUnusableError, match="rejected the login: 535"):
        await provider.send(
            _message("x@example.com"), sender="ann@acme.com", recipient="x@example.com"
        )
    await provider.close()


async def test_connection_refused_is_transient() -> None:
    provider = _provider(free_port(), TransportSecurity.PLAIN)
    with pytest.raises(TransientSendError, match="cannot connect"):
        await provider.send(
            _message("x@example.com"), sender="ann@acme.com", recipient="x@example.com"
        )
    await provider.close()


async def test_4xx_is_transient_and_5xx_permanent(starttls_server: SmtpServer) -> None:
    starttls_server.inbox.rcpt_replies["soft@example.com"] = ["452 4.2.2 Mailbox full"]
    starttls_server.inbox.rcpt_replies["hard@example.com"] = ["550 5.1.1 Unknown user!"]
    provider = _provider(starttls_server.port, TransportSecurity.STARTTLS)
    try:
        with pytest.raises(TransientSendError) as soft:
            await provider.send(
                _message("soft@example.com"), sender="ann@acme.com", recipient="soft@example.com"
            )
        assert soft.value.smtp_code == 452
        with pytest.raises(PermanentSendError) as hard:
            await provider.send(
                _message("hard@example.com"), sender="ann@acme.com", recipient="hard@example.com"
            )
        assert hard.value.smtp_code == 550
        # The connection is still good after refusals (RSET), and the retry goes through.
        await provider.send(
            _message("soft@example.com"), sender="ann@acme.com", recipient="soft@example.com"
        )
    finally:
        await provider.close()
    assert starttls_server.inbox.count_by_recipient() == {"soft@example.com": 1}
    assert starttls_server.inbox.logins == ["ann@acme.com"]
