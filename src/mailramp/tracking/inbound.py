"""What a message in a sender's inbox is: a reply, an automatic reply, a bounce report, or
something else — and which sent messages it refers to.

- Delivery-status reports (RFC 3464, `multipart/report; report-type=delivery-status`), by
  their first recipient's `Action` (RFC 3464 §2.3.3), which says whether the reporting
  server gave up:
  - `failed` with Status 5.x.x: a hard bounce (the address does not work);
  - `failed` with Status 4.x.x: a soft bounce — not delivered, the server gave up on a
    condition that may pass (4.4.7: expired in its queue); the address may still work;
  - `delayed`: not a bounce — the server is still trying, and may yet deliver it;
  - no `Action` at all: 5.x.x counts as failed, 4.x.x as delayed;
  - `delivered`, `relayed`, `expanded`: nothing to record.
  The original message is found through the Message-ID in the returned message or its
  headers.
- Automatic replies: RFC 3834 `Auto-Submitted` other than `no`, the de-facto `X-Autoreply`,
  `X-Autorespond`, and `Precedence: auto_reply | bulk | junk` headers.
- Replies: `In-Reply-To` or `References` naming a message mailramp sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from enum import StrEnum

MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class InboundKind(StrEnum):
    """What an inbox message is."""

    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    DELAYED = "delayed"
    UNRELATED = "unrelated"


@dataclass
class Inbound:
    """The classification and what it was based on."""

    kind: InboundKind
    references: list[str] = field(default_factory=list)
    status: str | None = None
    recipient: str | None = None
    sender: str | None = None
    subject: str | None = None
    message_id: str | None = None


def _ids(value: str | None) -> list[str]:
    return MESSAGE_ID.findall(value or "")


def _is_automatic(message: Message) -> bool:
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    precedence = str(message.get("Precedence", "")).strip().lower()
    return precedence in {"auto_reply", "bulk", "junk"}


def _delivery_status(message: Message) -> tuple[str | None, str | None, str | None]:
    """(status, action, final recipient) of the first recipient in a DSN."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks[1:] or blocks:
            if not isinstance(block, Message):
                continue
            status = block.get("Status")
            if status:
                final = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
                recipient = final.split(";", 1)[-1].strip() or None
                return str(status).strip(), str(block.get("Action", "")).strip().lower(), recipient
    return None, None, None


def _original_ids(message: Message) -> list[str]:
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            inner_message = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner_message, Message):
                return _ids(str(inner_message.get("Message-ID", "")))
        if content_type == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                headers = message_from_bytes(raw, policy=policy.default)
                return _ids(str(headers.get("Message-ID", "")))
    return []


def _report_kind(status: str | None, action: str | None) -> InboundKind:
    """What a delivery-status report says happened (see the module docstring)."""
    status_class = (status or "")[:1]
    if action == "delayed" or (not action and status_class == "4"):
        return InboundKind.DELAYED
    if action == "failed" or (not action and status_class == "5"):
        return InboundKind.HARD_BOUNCE if status_class == "5" else InboundKind.SOFT_BOUNCE
    return InboundKind.UNRELATED  # delivered, relayed or expanded


def classify_inbound(raw: bytes) -> Inbound:
    """Classify one message from an inbox."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    own_ids = _ids(str(message.get("Message-ID", "")))
    sender = str(message.get("From", ""))[:300] or None
    subject = str(message.get("Subject", ""))[:300] or None
    message_id = own_ids[0] if own_ids else None
    report_type = str(message.get_param("report-type", "")).lower()
    if message.get_content_type() == "multipart/report" and report_type == "delivery-status":
        status, action, recipient = _delivery_status(message)
        references = _original_ids(message) or _ids(str(message.get("In-Reply-To", "")))
        return Inbound(
            _report_kind(status, action),
            references,
            status=status,
            recipient=recipient,
            sender=sender,
            subject=subject,
            message_id=message_id,
        )
    references = _ids(str(message.get("In-Reply-To", ""))) + list(
        reversed(_ids(str(message.get("References", ""))))
    )
    if not references:
        return Inbound(InboundKind.UNRELATED, sender=sender, subject=subject, message_id=message_id)
    kind = InboundKind.AUTO_REPLY if _is_automatic(message) else InboundKind.REPLY
    return Inbound(kind, references, sender=sender, subject=subject, message_id=message_id)
