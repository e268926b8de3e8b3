"""One classifier for every message found in a sending mailbox's inbox, whichever reader
(IMAP, Microsoft Graph, Gmail) fetched it: the raw message in, a verdict out.

In this order, the first that applies:
1. a complaint: an ARF feedback report (RFC 5965), Microsoft's JMRP forward, or an
   Amazon SES complaint;
2. a delivery status notification (RFC 3464) or an SES bounce / delivery notice: a
   failure, a delay, or a delivery (`Action: delivered` or `expanded`; `relayed` says
   only that the message left for a system that does not report, so it records nothing);
3. a failure notice in plain words (`text.py`);
4. an automatic reply (`automatic.py`), matched by the Message-IDs it answers or, when it
   names none, by who sent it;
5. a reply: `In-Reply-To` or `References` naming a message;
6. anything else is unrelated.
A message the parser cannot make sense of is unrelated too: classifying never raises on
what a mail server sent.
"""

from __future__ import annotations

from dataclasses import replace
from email import message_from_bytes, policy
from email.message import Message

from mailramp.tracking.inbound.automatic import is_automatic
from mailramp.tracking.inbound.models import Failure, Inbound, InboundKind
from mailramp.tracking.inbound.parts import (
    RETURNED_TYPES,
    address_of,
    header,
    ids,
    quoted_message_ids,
    report_parts,
    returned_headers,
    split_report,
    text_of,
)
from mailramp.tracking.inbound.reply import reply_text
from mailramp.tracking.inbound.reports import (
    delivery_reports,
    feedback_report,
    ses_notification,
)
from mailramp.tracking.inbound.text import (
    failed_recipients,
    failures_in,
    is_delay_notice,
    is_failure_notice,
)

_SHOWN = 300  # characters of a sender or subject kept for the event
# How much of a message's text is read: a server's report fits many times over; a 5 MB
# text part (an auto-reply quoting a newsletter) is not read to its end.
REPORT_TEXT = 256 * 1024


def classify_inbound(raw: bytes) -> Inbound:
    """Classify one message from an inbox (the module docstring says how)."""
    message = message_from_bytes(raw, policy=policy.compat32)
    own = ids(header(message, "Message-ID"))
    base = Inbound(
        InboundKind.UNRELATED,
        sender=header(message, "From")[:_SHOWN] or None,
        subject=header(message, "Subject")[:_SHOWN] or None,
        message_id=own[0] if own else None,
    )
    answered = ids(header(message, "In-Reply-To")) + list(
        reversed(ids(header(message, "References")))
    )
    text = "\n".join(text_of(part) for part in report_parts(message))[:REPORT_TEXT]
    report, quoted = split_report(text)
    returned = returned_headers(message, quoted)
    originals = _original_ids(raw, returned, own)

    complaint = feedback_report(message)
    if complaint is not None:
        return _with(
            base,
            InboundKind.COMPLAINT,
            originals or answered,
            recipient=complaint.recipient or _returned_to(returned),
            feedback_type=complaint.feedback_type,
        )
    if "notificationType" in text or "eventType" in text:  # JSON, maybe inside SNS's
        ses = ses_notification(message)
        if ses is not None:
            references = ses.message_ids or originals
            if ses.type == "Complaint":
                recipient = ses.complained[0] if ses.complained else None
                return _with(
                    base,
                    InboundKind.COMPLAINT,
                    references,
                    recipient=recipient,
                    feedback_type=ses.feedback_type or "abuse",
                )
            if ses.type == "Bounce" and ses.failures:
                return _bounce(base, ses.failures, references)
            if ses.type == "Delivery":
                recipient = ses.delivered[0] if ses.delivered else None
                return _with(base, InboundKind.DELIVERED, references, recipient=recipient)
            return base  # another notice (a send, an open): nothing to record

    reports = delivery_reports(message, text)
    if reports:
        failed = [r.failure for r in reports if r.failed]
        if any(failure.recipient is None for failure in failed):
            # A recipient field left empty or garbled: the report's words name the address.
            named = iter(failed_recipients(message, report, returned))
            failed = [f if f.recipient else replace(f, recipient=next(named, None)) for f in failed]
        if failed:
            return _bounce(base, failed, originals or answered)
        delayed = [r.failure for r in reports if r.delayed]
        if delayed:
            return _with(base, InboundKind.DELAYED, originals or answered, failures=delayed)
        delivered = [r.failure.recipient for r in reports if r.delivered]
        if delivered:
            return _with(base, InboundKind.DELIVERED, originals or answered, recipient=delivered[0])
        return base  # relayed to a system that does not report: nothing to record

    attached = any(part.get_content_type() in RETURNED_TYPES for part in message.walk())
    if is_failure_notice(message, report, returns_message=attached or returned is not None):
        recipients = failed_recipients(message, report, returned)
        delayed_notice = is_delay_notice(report, base.subject or "")
        failures = failures_in(report, recipients, delayed=delayed_notice)
        references = originals or answered
        if delayed_notice:
            return _with(base, InboundKind.DELAYED, references, failures=failures)
        if failures:
            return _bounce(base, failures, references)
        # A notice naming no one: matched by the original it returns, if any.
        return _with(base, InboundKind.HARD_BOUNCE, references)

    sender = address_of(header(message, "From"))
    if is_automatic(message, answers_ours=bool(answered)):
        kind = InboundKind.AUTO_REPLY
    elif answered:
        kind = InboundKind.REPLY
    else:
        return base
    replied = _with(base, kind, answered, recipient=sender)
    replied.text = reply_text(message)
    return replied


def _original_ids(raw: bytes, returned: Message | None, own: list[str]) -> list[str]:
    """The Message-ID of the message a report returns: from its headers, else from any
    `Message-ID:` line quoted in the report below the report's own headers."""
    found = ids(header(returned, "Message-ID")) if returned is not None else []
    if not found:
        body = raw.partition(b"\r\n\r\n" if b"\r\n\r\n" in raw[:65536] else b"\n\n")[2]
        found = quoted_message_ids(body[:REPORT_TEXT].decode("latin-1"))
    return [i for i in found if i not in own]


def _bounce(base: Inbound, failures: list[Failure], references: list[str]) -> Inbound:
    kind = InboundKind.HARD_BOUNCE if failures[0].permanent else InboundKind.SOFT_BOUNCE
    return _with(base, kind, references, failures=failures, recipient=failures[0].recipient)


def _with(
    base: Inbound,
    kind: InboundKind,
    references: list[str],
    *,
    failures: list[Failure] | None = None,
    recipient: str | None = None,
    feedback_type: str | None = None,
) -> Inbound:
    return Inbound(
        kind,
        references=list(dict.fromkeys(references)),
        failures=failures or [],
        recipient=recipient or (failures[0].recipient if failures else None),
        sender=base.sender,
        subject=base.subject,
        message_id=base.message_id,
        feedback_type=feedback_type,
    )


def _returned_to(returned: Message | None) -> str | None:
    return address_of(header(returned, "To")) if returned is not None else None
