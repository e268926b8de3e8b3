"""What a send outcome writes to its tracking record, shared by the storage adapters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailramp.sending.models import Outcome, SendResult
from mailramp.tracking.models import TrackingStatus


def outcome_values(result: SendResult, now: datetime) -> dict[str, Any]:
    """The fields of a tracking record after a send outcome (both storage adapters)."""
    cleared = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    match result.outcome:
        case Outcome.SENT:
            # The provider said it took the message (SMTP 250 to DATA, Graph's 202, Gmail's
            # 200): that is what `delivered_at` records. Nothing later tells whether it
            # reached the inbox; a bounce report sets `bounced_at` and leaves this as it was.
            sent = {
                **cleared,
                "status": TrackingStatus.SENT.value,
                "sent_at": now,
                "delivered_at": now,
                "last_error": None,
            }
            # Only a provider's own Message-ID replaces the one stored when sending began.
            return sent if result.message_id is None else {**sent, "message_id": result.message_id}
        case Outcome.BOUNCED:
            return {
                **cleared,
                "status": TrackingStatus.BOUNCED.value,
                "sent_at": now,
                "bounced_at": now,
                "last_error": result.error,
            }
        case Outcome.RETRY:
            retry = {
                **cleared,
                "status": TrackingStatus.PENDING.value,
                "scheduled_at": result.retry_at,
                "next_attempt_at": result.retry_at,
                "last_error": result.error,
            }
            return retry if result.attempts is None else {**retry, "attempts": result.attempts}
        case Outcome.FAILED:
            return {**cleared, "status": TrackingStatus.FAILED.value, "last_error": result.error}
        case Outcome.UNCERTAIN:
            return {**cleared, "status": TrackingStatus.UNCERTAIN.value, "last_error": result.error}
        case Outcome.SUPPRESSED:
            return {
                **cleared,
                "status": TrackingStatus.SUPPRESSED.value,
                "message_id": None,
                "last_error": result.error,
            }
    raise AssertionError(result.outcome)
