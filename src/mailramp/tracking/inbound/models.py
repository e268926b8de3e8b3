"""What the classifier says about one inbox message."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mailramp.tracking.inbound.status import BounceReason


class InboundKind(StrEnum):
    """What an inbox message is."""

    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    """A positive delivery status notification: the receiving server took the message."""
    COMPLAINT = "complaint"
    WARMUP = "warmup"
    """A warm-up email, a reply in a warm-up thread or a report about one (the pool's,
    deliverability/pool.py): nothing of a campaign."""
    UNRELATED = "unrelated"


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce (or a delay report) names: the address, the enhanced status
    code (taken from the report, or `inferred` from the reply code and the words), the
    SMTP reply code, a reason and the server's words."""

    recipient: str | None
    status: str
    reason: BounceReason
    reply_code: str | None = None
    diagnostic: str | None = None
    inferred: bool = False

    @property
    def permanent(self) -> bool:
        """5.x.x: the address does not work."""
        return self.status.startswith("5")


@dataclass
class Inbound:
    """The classification and what it was based on.

    `references` are the Message-IDs of what the message answers or returns (most
    specific first); `recipient` is the address it is about — the failed recipient of a
    bounce, who complained, or who replied; `failures` every recipient a bounce or delay
    report names. `sender` and `subject` are the message's own, as written."""

    kind: InboundKind
    references: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    recipient: str | None = None
    sender: str | None = None
    subject: str | None = None
    message_id: str | None = None
    feedback_type: str | None = None  # a complaint's ARF Feedback-Type (abuse, fraud, ...)
    text: str | None = None  # a reply's new text (quoted history left out)

    @property
    def status(self) -> str | None:
        """The enhanced status code of the first failure."""
        return self.failures[0].status if self.failures else None

    @property
    def reason(self) -> BounceReason | None:
        """The reason of the first failure."""
        return self.failures[0].reason if self.failures else None
