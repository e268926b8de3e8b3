"""Machine-readable reports: delivery status notifications (RFC 3464, and RFC 6533's
`message/global-delivery-status`), feedback-loop complaints (ARF, RFC 5965) and Amazon
SES notifications (JSON, by mail or through SNS).

A DSN's per-recipient fields say, for each recipient, what the reporting server did
(`Action`, RFC 3464 §2.3.3): `failed` (with Status 5.x.x a hard bounce, 4.x.x a soft one:
the server gave up on a condition that may pass), `delayed` (still trying: not a bounce),
or `delivered` / `relayed` / `expanded` (nothing to record). Without an `Action`, or with
one RFC 3464 does not define, 5.x.x counts as failed and 4.x.x as delayed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from mailramp.tracking.inbound.models import Failure
from mailramp.tracking.inbound.parts import address_of, text_of
from mailramp.tracking.inbound.status import BounceReason, verdict

DSN_TYPES = frozenset(
    {"message/delivery-status", "message/global-delivery-status", "text/delivery-status"}
)
FEEDBACK_TYPES = frozenset({"message/feedback-report", "text/feedback-report"})
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")


@dataclass(frozen=True)
class RecipientReport:
    """What a DSN says of one recipient."""

    failure: Failure
    action: str  # failed, delayed, delivered, relayed, expanded ('' when not stated)

    @property
    def done(self) -> bool:
        """Delivered, relayed or expanded (or a 2.x.x status): nothing went wrong."""
        return self.failure.status.startswith("2") or self.action.startswith(
            ("delivered", "relayed", "expand")
        )

    @property
    def delivered(self) -> bool:
        """The reporting server put the message in the recipient's mailbox (or a list's
        members'); `relayed` only says it went on to a system that does not report."""
        if self.action:
            return self.action.startswith(("delivered", "expand"))
        return self.failure.status.startswith("2")

    @property
    def failed(self) -> bool:
        """The server gave up on this recipient. An action RFC 3464 does not define
        ("error") is read as a missing one: by the status class."""
        if self.done or self.action.startswith("delay"):
            return False
        return self.action.startswith("fail") or self.failure.permanent

    @property
    def delayed(self) -> bool:
        """The server is still trying."""
        return not self.done and not self.failed


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The field groups of a delivery-status or feedback-report part (the first is about
    the message, the others about one recipient each), names lowercased."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {name.lower(): str(value).strip() for name, value in block.items()}
            for block in payload
            if isinstance(block, Message)
        ]
    return field_blocks(text_of(part))


def field_blocks(text: str) -> list[dict[str, str]]:
    """The groups of `Name: value` fields in `text`, each ended by a blank line."""
    blocks: list[dict[str, str]] = [{}]
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            last = None
            continue
        if line[:1] in " \t" and last is not None:
            blocks[-1][last] += " " + line.strip()
            continue
        found = _FIELD.match(line)
        if found:
            last = found.group(1).lower()
            blocks[-1][last] = found.group(2).strip()
    return [block for block in blocks if block]


def _typed_address(value: str) -> str | None:
    """The address of a `type; address` field (Final-Recipient: rfc822; a@b)."""
    _, _, address = value.rpartition(";")
    return address_of(address.strip() or value)


_DSN_FIELDS = re.compile(r"^(?:Final|Original)-Recipient:", re.IGNORECASE | re.MULTILINE)


def delivery_reports(message: Message, text: str) -> list[RecipientReport] | None:
    """Each recipient a DSN in `message` reports on, or None if it holds no DSN. `text` is
    the message's text: a DSN whose MIME structure is broken shows its fields there."""
    blocks = [
        block
        for part in message.walk()
        if part.get_content_type() in DSN_TYPES
        for block in _field_blocks(part)
    ]
    if not blocks and _DSN_FIELDS.search(text):
        blocks = field_blocks(text)
    if not blocks:
        return None
    reports: list[RecipientReport] = []
    for block in blocks:
        status = block.get("status", "").split(" ", 1)[0].strip()
        recipient_field = block.get("original-recipient") or block.get("final-recipient")
        if not recipient_field and not status:
            continue  # the per-message fields
        diagnostic = block.get("diagnostic-code", "")
        _, _, words = diagnostic.rpartition(";") if ";" in diagnostic[:12] else ("", "", "")
        words = words.strip() or diagnostic
        action = block.get("action", "").strip().lower()
        if status[:1] == "2" or action in ("delivered", "relayed", "expanded"):
            failure = Failure(
                _typed_address(recipient_field or ""), status or "2.0.0", BounceReason.OTHER
            )
            reports.append(RecipientReport(failure, action or "delivered"))
            continue
        default_class = "4" if action.startswith("delay") else "5"
        judged = verdict(words, status=status or None, default_class=default_class)
        failure = Failure(
            recipient=_typed_address(recipient_field or ""),
            status=judged.status,
            reason=judged.reason,
            reply_code=judged.reply_code,
            diagnostic=words[:500] or None,
            inferred=judged.inferred,
        )
        reports.append(RecipientReport(failure, action))
    return reports


@dataclass(frozen=True)
class Complaint:
    """A feedback report: who complained, of what kind, about which message."""

    recipient: str | None
    feedback_type: str


def feedback_report(message: Message) -> Complaint | None:
    """The ARF report (RFC 5965) in `message`, or Microsoft's JMRP complaint, if it holds
    one."""
    for part in message.walk():
        if part.get_content_type() not in FEEDBACK_TYPES:
            continue
        fields: dict[str, str] = {}
        for block in _field_blocks(part):
            fields |= block
        recipient = fields.get("original-rcpt-to") or fields.get("removal-recipient") or ""
        return Complaint(address_of(recipient), fields.get("feedback-type", "abuse").lower())
    for part in message.walk():
        # Microsoft's older feedback loop (JMRP) forwards the message itself, marked with
        # the address of the person who complained.
        marked = part.get("X-HmXmrOriginalRecipient")
        if marked:
            return Complaint(address_of(str(marked)), "abuse")
    return None


@dataclass(frozen=True)
class SesNotification:
    """An Amazon SES event notification (by e-mail, or wrapped in an SNS message)."""

    type: str  # Bounce, Complaint, Delivery, ...
    failures: list[Failure]
    complained: list[str]
    feedback_type: str | None
    message_ids: list[str]  # the original's Message-ID header, when SES gives it
    delivered: list[str] = field(default_factory=list)  # a Delivery's recipients


def _json_objects(message: Message) -> Iterator[dict[str, Any]]:
    for part in message.walk():
        if part.get_content_maintype() != "text" and part.get_content_type() != (
            "application/json"
        ):
            continue
        text = text_of(part)
        start = text.find("{")
        if start < 0:
            continue
        try:
            document, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            continue
        if isinstance(document, dict):
            inner = document.get("Message")
            if document.get("Type") == "Notification" and isinstance(inner, str):
                try:
                    document = json.loads(inner)
                except ValueError:
                    continue
            if isinstance(document, dict):
                yield document


def ses_notification(message: Message) -> SesNotification | None:
    """The SES notification `message` carries, if it is one."""
    for document in _json_objects(message):
        kind = document.get("notificationType") or document.get("eventType")
        if not isinstance(kind, str) or "mail" not in document:
            continue
        headers = _object(_object(document.get("mail")).get("commonHeaders"))
        message_ids = [str(headers["messageId"])] if headers.get("messageId") else []
        failures: list[Failure] = []
        bounce = _object(document.get("bounce"))
        transient = bounce.get("bounceType") == "Transient"
        for entry in bounce.get("bouncedRecipients") or []:
            if not isinstance(entry, dict):
                continue
            words = str(entry.get("diagnosticCode") or "")
            status = str(entry.get("status") or "") or None
            judged = verdict(words, status=status, default_class="4" if transient else "5")
            failures.append(
                Failure(
                    recipient=address_of(str(entry.get("emailAddress") or "")),
                    status=judged.status,
                    reason=judged.reason,
                    reply_code=judged.reply_code,
                    diagnostic=words[:500] or None,
                    inferred=judged.inferred,
                )
            )
        complaint = _object(document.get("complaint"))
        complained = [
            address
            for entry in complaint.get("complainedRecipients") or []
            if isinstance(entry, dict)
            and (address := address_of(str(entry.get("emailAddress") or "")))
        ]
        feedback = complaint.get("complaintFeedbackType")
        delivered = [
            address
            for entry in _object(document.get("delivery")).get("recipients") or []
            if (address := address_of(str(entry)))
        ]
        return SesNotification(
            kind, failures, complained, str(feedback) if feedback else None, message_ids, delivered
        )
    return None


def _object(value: object) -> dict[str, Any]:
    """A JSON object, or an empty one in place of anything else."""
    return value if isinstance(value, dict) else {}
