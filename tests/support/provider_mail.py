"""Messages and tokens the provider and flow tests share: a campaign message built like
sending/message.py builds one, the replies, bounces and newsletters that arrive in an
inbox, and the OAuth side as a provider sees it."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

UNSUBSCRIBE = "<https://mailramp.example/u/rec1?sig=abc>"


class Tokens:
    """The OAuth side as the provider sees it: a current token, and a new one on demand."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = list(tokens)
        self.refreshes = 0

    async def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.refreshes += 1
            self._tokens.pop(0)
        return self._tokens[0]


def campaign_message(record_id: str, recipient: str, *, sender: str) -> Message:
    """Built with the same compat32 classes and headers as sending/message.py."""
    domain = sender.rpartition("@")[2]
    message = MIMEMultipart("alternative")
    message.attach(MIMEText("Hi Bob, see https://acme.example\n", "plain", "utf-8"))
    message.attach(MIMEText("<p>Hi Bob</p>", "html", "utf-8"))
    message["From"] = f"Ann <{sender}>"
    message["To"] = recipient
    message["Subject"] = "Hello Bob"
    message["Date"] = "Mon, 03 Mar 2025 10:00:00 +0000"
    message["Message-ID"] = f"<{record_id}.mailramp@{domain}>"
    message["In-Reply-To"] = f"<earlier.mailramp@{domain}>"
    message["List-Unsubscribe"] = UNSUBSCRIBE
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def reply(to_message_id: str, *, to: str, own: str = "reply1") -> bytes:
    """Bob's reply to the message `to_message_id`, with Message-ID `<own@example.com>`."""
    return (
        f"From: Bob <bob@example.com>\r\nTo: {to}\r\nSubject: Re: Hello Bob\r\n"
        f"Message-ID: <{own}@example.com>\r\nIn-Reply-To: {to_message_id}\r\n"
        f"References: {to_message_id}\r\n\r\nSounds good.\r\n"
    ).encode()


@dataclass(frozen=True)
class Reporter:
    """Who writes a delivery report, and how."""

    sender: str
    subject: str
    host: str
    text: str


POSTFIX = Reporter(
    "MAILER-DAEMON@mx.example.com",
    "Undelivered Mail Returned to Sender",
    "mx.example.com",
    "Delivery failed.",
)
GOOGLE = Reporter(
    "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
    "Delivery Status Notification (Failure)",
    "googlemail.com",
    "Address not found.",
)


def dsn(recipient: str, original_id: str, *, to: str, reporter: Reporter = POSTFIX) -> bytes:
    """A hard bounce of the message `original_id` sent from `to` to `recipient`."""
    return (
        f"From: {reporter.sender}\r\nTo: {to}\r\nSubject: {reporter.subject}\r\n"
        f"Message-ID: <dsn1@{reporter.host}>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain\r\n\r\n{reporter.text}\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporter.host}\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {to}\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n\r\n"
        "--B--\r\n"
    ).encode()


def newsletter(n: int, *, to: str) -> bytes:
    """Mail that is neither a reply nor a bounce."""
    return (
        f"From: news@example.org\r\nTo: {to}\r\nSubject: News {n}\r\n"
        f"Message-ID: <news{n}@example.org>\r\n\r\nHi\r\n"
    ).encode()
