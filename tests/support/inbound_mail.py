"""Messages that mail servers and people send back to a sender, written here the way real
servers write them: a qmail bounce, Exchange's plain-text bounce (no Message-ID), an ARF
complaint and a German out-of-office notice."""

from __future__ import annotations

SENDER = "ann@acme.com"


def qmail_bounce(recipient: str, original_id: str) -> bytes:
    """qmail's notice: no report part, the address in `<...>:` and the original below."""
    return (
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx1.example.com\r\n"
        f"To: {SENDER}\r\nSubject: failure notice\r\nMessage-ID: <q1@mx1.example.com>\r\n\r\n"
        "Hi. This is the qmail-send program at mx1.example.com.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{recipient}>:\r\n192.0.2.7 does not like recipient.\r\n"
        f"Remote host said: 550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
        "Giving up on 192.0.2.7.\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Return-Path: <{SENDER}>\r\nFrom: Ann <{SENDER}>\r\nTo: {recipient}\r\n"
        f"Subject: Hello\r\nMessage-ID: {original_id}\r\n\r\nHi,\r\n"
    ).encode()


def exchange_bounce(recipient: str) -> bytes:
    """Exchange's plain-text notice, which quotes no Message-ID at all."""
    return (
        "From: System Administrator <postmaster@corp.example.net>\r\n"
        f"To: {SENDER}\r\nSubject: Undeliverable: Hello\r\n"
        "Message-ID: <x1@corp.example.net>\r\nContent-Type: text/plain\r\n\r\n"
        "Your message did not reach some or all of the intended recipients.\r\n\r\n"
        "      Subject:\tHello\r\n      Sent:\t3/1/2027 9:05 AM\r\n\r\n"
        "The following recipient(s) could not be reached:\r\n\r\n"
        f"      {recipient} on 3/1/2027 9:06 AM\r\n"
        "            The e-mail account does not exist at the organization this message "
        "was sent to.\r\n            <corp.example.net #5.1.1>\r\n"
    ).encode()


def arf_complaint(recipient: str, original_id: str) -> bytes:
    """A feedback-loop report (RFC 5965) as mailbox providers send them."""
    return (
        "From: Feedback Loop <fbl@isp.example.org>\r\n"
        f"To: {SENDER}\r\nSubject: FW: Hello\r\nMessage-ID: <f1@isp.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{SENDER}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n"
        "Arrival-Date: Mon, 1 Mar 2027 09:07:00 +0000\r\n\r\n"
        "--F\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: Ann <{SENDER}>\r\nTo: {recipient}\r\nSubject: Hello\r\n"
        f"Message-ID: {original_id}\r\n\r\nHi,\r\n--F--\r\n"
    ).encode()


def german_out_of_office(sender: str) -> bytes:
    """An out-of-office notice that names no Message-ID (some servers leave it out)."""
    return (
        f"From: Dave <{sender}>\r\nTo: {SENDER}\r\n"
        "Subject: =?UTF-8?Q?Abwesenheitsnotiz=3A_Hello?=\r\n"
        "Auto-Submitted: auto-replied\r\nMessage-ID: <ooo1@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Ich bin bis zum 15. M\u00e4rz nicht im B\u00fcro.\r\n"
    ).encode()
