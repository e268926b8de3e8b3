"""The inbound classifier, one rule at a time, on messages written here the way servers
write them (the real corpus is measured in test_inbound_corpus.py)."""

from __future__ import annotations

import json

import pytest

from mailramp.tracking.inbound import BounceReason, InboundKind, classify_inbound
from mailramp.tracking.inbound.status import verdict

ORIGINAL = "<orig-1@acme.com>"


def _message(headers: dict[str, str], body: str) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _dsn(action: str, status: str, diagnostic: str = "", *, content: str = "") -> bytes:
    return _message(
        {
            "From": "Mail Delivery System <MAILER-DAEMON@mx.example.com>",
            "To": "ann@acme.com",
            "Subject": "Delivery Status Notification",
            "MIME-Version": "1.0",
            "Content-Type": 'multipart/report; report-type=delivery-status; boundary="B"',
        },
        "--B\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; bob@example.com\r\nAction: {action}\r\nStatus: {status}\r\n"
        + (f"Diagnostic-Code: smtp; {diagnostic}\r\n" if diagnostic else "")
        + "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: ann@acme.com\r\nTo: bob@example.com\r\nMessage-ID: {ORIGINAL}\r\n\r\n"
        "--B--\r\n" + content,
    )


@pytest.mark.parametrize(
    ("action", "status", "diagnostic", "kind", "reason"),
    [
        ("failed", "5.1.1", "550 5.1.1 user unknown", InboundKind.HARD_BOUNCE, "user_unknown"),
        # A generic stated code gives way to the precise one in the server's answer.
        ("failed", "5.0.0", "552 5.2.2 mailbox full", InboundKind.HARD_BOUNCE, "mailbox_full"),
        ("failed", "4.4.7", "", InboundKind.SOFT_BOUNCE, "expired"),
        ("delayed", "4.2.2", "452 4.2.2 over quota", InboundKind.DELAYED, "mailbox_full"),
        ("failed", "5.7.1", "554 5.7.1 blocked using zen.spamhaus.org", InboundKind.HARD_BOUNCE,
         "blocked"),
        ("failed", "5.7.26", "550 5.7.26 DMARC policy", InboundKind.HARD_BOUNCE, "policy"),
        ("failed", "5.3.4", "552 message size exceeds limit", InboundKind.HARD_BOUNCE,
         "message_too_large"),
        ("failed", "5.1.2", "", InboundKind.HARD_BOUNCE, "domain_not_found"),
    ],
)  # fmt: skip
def test_a_dsn_per_recipient(
    action: str, status: str, diagnostic: str, kind: InboundKind, reason: str
) -> None:
    inbound = classify_inbound(_dsn(action, status, diagnostic))
    assert inbound.kind is kind
    assert inbound.references == [ORIGINAL]
    [failure] = inbound.failures
    assert failure.recipient == "bob@example.com"
    assert failure.reason.value == reason
    assert failure.status[:1] == status[:1] and not failure.inferred


def test_a_delivered_dsn_records_the_delivery_of_the_original() -> None:
    inbound = classify_inbound(_dsn("delivered", "2.0.0"))
    assert (inbound.kind, inbound.references, inbound.recipient, inbound.failures) == (
        InboundKind.DELIVERED,
        [ORIGINAL],
        "bob@example.com",
        [],
    )


def test_a_relayed_dsn_is_nothing_to_record() -> None:
    # The message went on to a system that does not report: nobody knows if it arrived.
    assert classify_inbound(_dsn("relayed", "2.0.0")).kind is InboundKind.UNRELATED


@pytest.mark.parametrize(
    ("words", "status", "reason"),
    [
        ("550 Unknown user kijitora@example.com", "5.1.1", BounceReason.USER_UNKNOWN),
        ("452 Mailbox full", "4.2.2", BounceReason.MAILBOX_FULL),
        ("Host or domain name not found. Name service error", "5.1.2",
         BounceReason.DOMAIN_NOT_FOUND),
        ("550 Message rejected as spam", "5.7.1", BounceReason.BLOCKED),
        ("554 Relay access denied", "5.7.1", BounceReason.POLICY),
        ("retry timeout exceeded", "4.4.7", BounceReason.EXPIRED),
        ("Message too large", "5.3.4", BounceReason.MESSAGE_TOO_LARGE),
        ("something went wrong", "5.0.0", BounceReason.OTHER),
        ("421 try again later", "4.0.0", BounceReason.OTHER),
    ],
)  # fmt: skip
def test_a_status_is_inferred_from_the_reply_code_and_the_words(
    words: str, status: str, reason: BounceReason
) -> None:
    judged = verdict(words)
    assert (judged.status, judged.reason, judged.inferred) == (status, reason, True)


def test_an_exim_notice_names_its_failed_recipients_in_a_header() -> None:
    raw = _message(
        {
            "From": "Mail Delivery System <Mailer-Daemon@mx.example.com>",
            "To": "ann@acme.com",
            "Subject": "Mail delivery failed: returning message to sender",
            "X-Failed-Recipients": "bob@example.com, carol@example.com",
        },
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  bob@example.com\r\n    SMTP error from remote mail server after RCPT TO:"
        "<bob@example.com>:\r\n    550 5.1.1 <bob@example.com>: Recipient address rejected\r\n"
        "  carol@example.com\r\n    SMTP error from remote mail server after RCPT TO:"
        "<carol@example.com>:\r\n    452 4.2.2 Mailbox full\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        f"From: ann@acme.com\r\nTo: bob@example.com, carol@example.com\r\n"
        f"Message-ID: {ORIGINAL}\r\nSubject: Hello\r\n\r\nHi\r\n",
    )
    inbound = classify_inbound(raw)
    assert inbound.kind is InboundKind.HARD_BOUNCE
    assert inbound.references == [ORIGINAL]
    assert [(f.recipient, f.status, f.reason.value) for f in inbound.failures] == [
        ("bob@example.com", "5.1.1", "user_unknown"),
        ("carol@example.com", "4.2.2", "mailbox_full"),
    ]


def _ses(document: dict[str, object]) -> bytes:
    envelope = {"Type": "Notification", "Message": json.dumps(document)}
    return _message(
        {
            "From": "AWS Notifications <no-reply@sns.amazonaws.com>",
            "To": "ann@acme.com",
            "Subject": "AWS Notification Message",
        },
        json.dumps(envelope),
    )


def test_amazon_ses_notifications_by_sns() -> None:
    mail = {"messageId": "0100-ses", "commonHeaders": {"messageId": ORIGINAL}}
    bounce = _ses(
        {
            "notificationType": "Bounce",
            "mail": mail,
            "bounce": {
                "bounceType": "Permanent",
                "bouncedRecipients": [
                    {
                        "emailAddress": "bob@example.com",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            },
        }
    )
    inbound = classify_inbound(bounce)
    assert (inbound.kind, inbound.recipient, inbound.status) == (
        InboundKind.HARD_BOUNCE,
        "bob@example.com",
        "5.1.1",
    )
    assert inbound.references == [ORIGINAL]
    complaint = _ses(
        {
            "notificationType": "Complaint",
            "mail": mail,
            "complaint": {
                "complainedRecipients": [{"emailAddress": "Carol@Example.com"}],
                "complaintFeedbackType": "abuse",
            },
        }
    )
    inbound = classify_inbound(complaint)
    assert (inbound.kind, inbound.recipient, inbound.feedback_type) == (
        InboundKind.COMPLAINT,
        "carol@example.com",
        "abuse",
    )
    delivery = _ses(
        {
            "notificationType": "Delivery",
            "mail": mail,
            "delivery": {"recipients": ["Dave@Example.com"], "smtpResponse": "250 2.6.0 ok"},
        }
    )
    delivered = classify_inbound(delivery)
    assert (delivered.kind, delivered.recipient) == (InboundKind.DELIVERED, "dave@example.com")
    sent = _ses({"notificationType": "Send", "mail": mail})
    assert classify_inbound(sent).kind is InboundKind.UNRELATED


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Hello",
        "Out of Office: Hello",
        "=?UTF-8?Q?R=C3=A9ponse_automatique=3A_Hello?=",
        "=?UTF-8?Q?Respuesta_autom=C3=A1tica=3A_Hello?=",
        "Risposta automatica: Hello",
        "=?UTF-8?B?6Ieq5YuV5b+c562UOiBIZWxsbw==?=",  # 自動応答: Hello
        "Abwesenheitsnotiz: Hello",
    ],
)
def test_out_of_office_subjects_in_many_languages(subject: str) -> None:
    raw = _message({"From": "bob@example.com", "To": "ann@acme.com", "Subject": subject}, "Away.")
    inbound = classify_inbound(raw)
    assert (inbound.kind, inbound.recipient) == (InboundKind.AUTO_REPLY, "bob@example.com")


def test_a_person_answering_about_absence_is_a_reply() -> None:
    raw = _message(
        {
            "From": "bob@example.com",
            "To": "ann@acme.com",
            "Subject": "Re: Out of office tracking for your team",
            "In-Reply-To": ORIGINAL,
        },
        "Yes, tell me more.",
    )
    assert classify_inbound(raw).kind is InboundKind.REPLY


def test_a_newsletter_is_not_an_auto_reply() -> None:
    raw = _message(
        {"From": "news@shop.example", "Subject": "Deals", "Precedence": "bulk"},
        "Our deals.",
    )
    assert classify_inbound(raw).kind is InboundKind.UNRELATED


def test_an_exchange_rule_loop_header_marks_an_auto_reply() -> None:
    raw = _message(
        {
            "From": "bob@example.com",
            "To": "ann@acme.com",
            "Subject": "Hello",
            "X-MS-Exchange-Inbox-Rules-Loop": "bob@example.com",
            "In-Reply-To": ORIGINAL,
        },
        "I will be back on Monday.",
    )
    assert classify_inbound(raw).kind is InboundKind.AUTO_REPLY


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\xff\xfe garbage \r\n\r\n\x80\x81", id="binary"),
        pytest.param(
            _message(
                {"From": "MAILER-DAEMON@mx", "Subject": "failure notice",
                 "Content-Type": 'multipart/mixed; boundary="never-closed"'},
                "--never-closed\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\n"
                "<bob@example.com>:\r\n550 no such user\r\n--never-cl",
            ),
            id="truncated-with-unknown-charset",
        ),
        pytest.param(
            _message(
                {"From": "MAILER-DAEMON@mx", "Subject": "Undeliverable",
                 "Content-Type": 'multipart/report; report-type=delivery-status; boundary="Z"'},
                "--Z\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n"
                "Final-Recipient: rfc822; =?bogus?=\r\n--Z\r\n"
                "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
                "\r\n" + "QUJD" * 1_400_000 + "\r\n--Z--\r\n",
            ),
            id="5MB-attachment",
        ),
        pytest.param(
            _message({"From": "x", "Subject": "=?utf-8?b?broken", "References": "<" * 5000},
                     "\u00e9".encode("latin-1").decode("latin-1")),
            id="broken-headers",
        ),
    ],
)  # fmt: skip
def test_malformed_messages_never_raise(raw: bytes) -> None:
    inbound = classify_inbound(raw)
    assert isinstance(inbound.kind, InboundKind)


def test_a_status_field_holding_a_reply_code_is_read_as_one() -> None:
    inbound = classify_inbound(_dsn("failed", "553", "553 Exceeded maximum inbound messages"))
    assert inbound.kind is InboundKind.HARD_BOUNCE
    assert (inbound.status, inbound.failures[0].reply_code) == ("5.0.0", "553")


def test_an_undefined_action_is_read_by_the_status_class() -> None:
    assert classify_inbound(_dsn("error", "5.1.1")).kind is InboundKind.HARD_BOUNCE
    assert classify_inbound(_dsn("error", "4.4.1")).kind is InboundKind.DELAYED


def test_a_microsoft_jmrp_complaint() -> None:
    raw = _message(
        {
            "From": "staff@hotmail.com",
            "To": "ann@acme.com",
            "Subject": "complaint about message from 192.0.2.1",
            "MIME-Version": "1.0",
            "Content-Type": 'multipart/mixed; boundary="J"',
        },
        "--J\r\nContent-Type: text/plain\r\n\r\nThis is a complaint.\r\n"
        "--J\r\nContent-Type: message/rfc822\r\n\r\n"
        "X-HmXmrOriginalRecipient: Bob@hotmail.com\r\n"
        f"From: ann@acme.com\r\nTo: bob@hotmail.com\r\nMessage-ID: {ORIGINAL}\r\n\r\nHi\r\n"
        "--J--\r\n",
    )
    inbound = classify_inbound(raw)
    assert (inbound.kind, inbound.recipient, inbound.references) == (
        InboundKind.COMPLAINT,
        "bob@hotmail.com",
        [ORIGINAL],
    )


def test_a_null_sender_with_bulk_precedence_is_an_auto_reply() -> None:
    raw = _message(
        {
            "Return-Path": "<>",
            "From": "John <john@example.com>",
            "Subject": "Thank you for your e-mail",
            "Precedence": "bulk",
        },
        "We received your message and will answer within two days.",
    )
    assert classify_inbound(raw).kind is InboundKind.AUTO_REPLY


def test_what_a_notice_says_decides_between_a_delay_and_a_bounce() -> None:
    daemon = {"From": "MAILER-DAEMON@mx.example.com", "To": "ann@acme.com"}
    unknown = _message(
        daemon | {"Subject": "Warning: bob@example.com - User unknown!"},
        "bob@example.com - no such user here.\r\n",
    )
    assert classify_inbound(unknown).kind is InboundKind.HARD_BOUNCE
    postmaster = _message(
        daemon | {"Subject": "Processing Error"},
        "Intended recipient: bob@example.com\r\n\r\nThe following mail has been returned "
        "because it encountered an error.\r\nThe POSTMASTER will attempt to contact the "
        "intended recipient.\r\n",
    )
    assert classify_inbound(postmaster).kind is InboundKind.HARD_BOUNCE
    warning = _message(
        daemon | {"Subject": "Delivery Status Notification (Delay)"},
        "This is an automatically generated Delivery Status Notification.\r\n"
        "THIS IS A WARNING MESSAGE ONLY.\r\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.\r\n\r\n"
        "Delivery to the following recipients has been delayed.\r\n\r\n       bob@example.com\r\n",
    )
    inbound = classify_inbound(warning)
    assert (inbound.kind, inbound.recipient) == (InboundKind.DELAYED, "bob@example.com")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            "Sounds good, let's talk on Tuesday.\r\n\r\nBob\r\n\r\n"
            "On Mon, 1 Mar 2027 at 09:00, Ann <ann@acme.com> wrote:\r\n> Hi Bob,\r\n> A note.\r\n",
            "text/plain",
        ),
        (
            "Sounds good, let's talk on Tuesday.\r\n\r\nBob\r\n\r\n"
            "________________________________\r\nFrom: Ann <ann@acme.com>\r\n"
            "Sent: Monday, March 1, 2027 9:00 AM\r\nTo: Bob\r\nSubject: Hello Bob\r\n"
            "\r\nHi Bob,\r\n",
            "text/plain",
        ),
        (
            "<div>Sounds good, let's talk on Tuesday.</div><div><br></div><div>Bob</div>"
            "<blockquote><div>Am 01.03.2027 um 09:00 schrieb Ann &lt;ann@acme.com&gt;:</div>"
            "<div>Hi Bob</div></blockquote>",
            "text/html",
        ),
    ],
    ids=["gmail", "outlook", "html-german-client"],
)
def test_a_reply_keeps_what_the_person_wrote_not_the_quote(body: str, content_type: str) -> None:
    raw = _message(
        {
            "From": "Bob <bob@example.com>",
            "Subject": "Re: Hello Bob",
            "In-Reply-To": ORIGINAL,
            "Content-Type": f"{content_type}; charset=utf-8",
        },
        body,
    )
    inbound = classify_inbound(raw)
    assert inbound.kind is InboundKind.REPLY
    assert inbound.text == "Sounds good, let's talk on Tuesday.\n\nBob"


def test_a_long_reply_is_cut_and_says_so() -> None:
    raw = _message(
        {"From": "bob@example.com", "Subject": "Re: Hi", "In-Reply-To": ORIGINAL},
        "word " * 1000,
    )
    text = classify_inbound(raw).text or ""
    assert len(text) == 2000 and text.endswith("…")
