"""What a send outcome does: the fields it writes to its tracking record, the states it may
leave, the counters it moves and the address it suppresses. Both storage adapters run these
rules in their `record_results`; they only choose how to query."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mailramp.sending.lifecycle import released
from mailramp.sending.models import Outcome, SendResult
from mailramp.suppression.models import Suppression
from mailramp.tracking.events import HARD_BOUNCE, SENT_FIRSTS, ChangedEmail, state_events
from mailramp.tracking.models import EmailEvent, EventType, TrackingStatus

# A record turned `uncertain` by an expired lease still takes a definite outcome if its
# worker reports one after all; any other status means it was already recorded.
OPEN_STATES = (TrackingStatus.SENDING.value, TrackingStatus.UNCERTAIN.value)
# A retry is no outcome: it puts the record back in the queue, which only the worker still
# holding it may do. Once the lease ran out the campaign may have completed around the
# `uncertain` record, and a `pending` one there would never leave.
RETRY_STATES = (TrackingStatus.SENDING.value,)


def states_it_may_leave(result: SendResult) -> list[str]:
    """The record states this outcome may be written over (anything else: already recorded)."""
    return list(RETRY_STATES if result.outcome is Outcome.RETRY else OPEN_STATES)


def needs_own_lease(result: SendResult) -> bool:
    """Whether the outcome may only be written over a record the reporting worker still
    holds: a retry (it puts the record back in the queue). Once re-queued, another worker
    may claim and mark it `sending` again; the first worker's report, stored again after
    an outage, must not take it back from under that send."""
    return result.outcome is Outcome.RETRY


def counted_firsts(outcome: Outcome) -> Mapping[str, str]:
    """The person's timestamps (→ the counters they feed) the outcome sets when they are
    not set yet, once its record changed: a sent message counts the person as sent to; a
    refused recipient is a hard bounce (sent and bounced)."""
    match outcome:
        case Outcome.SENT:
            return SENT_FIRSTS
        case Outcome.BOUNCED:
            return HARD_BOUNCE.firsts
    return {}


ENDS_SEQUENCE = frozenset({Outcome.BOUNCED, Outcome.FAILED, Outcome.SUPPRESSED})
"""Outcomes after which the person gets no later step: their address refused the message,
could not be reached however often it was tried, or opted out since."""


def suppression_for(result: SendResult, now: datetime) -> Suppression | None:
    """The address a refused recipient puts on its user's suppression list."""
    if result.outcome is not Outcome.BOUNCED:
        return None
    return HARD_BOUNCE.suppression(result, now=now, detail=result.error)


def outcome_values(result: SendResult, now: datetime) -> dict[str, Any]:
    """The fields of a tracking record after a send outcome (both storage adapters)."""
    match result.outcome:
        case Outcome.SENT:
            # The provider said it took the message (SMTP 250 to DATA, Graph's 202, Gmail's
            # 200): that is what `delivered_at` records. Nothing later tells whether it
            # reached the inbox; a bounce report sets `bounced_at` and leaves this as it was.
            sent = {
                **released(TrackingStatus.SENT, now),
                "sent_at": now,
                "delivered_at": now,
                "last_error": None,
            }
            # Only a provider's own Message-ID replaces the one stored when sending began.
            return sent if result.message_id is None else {**sent, "message_id": result.message_id}
        case Outcome.BOUNCED:
            return {
                **released(TrackingStatus.BOUNCED, now),
                "sent_at": now,
                "bounced_at": now,
                "last_error": result.error,
            }
        case Outcome.RETRY:
            retry = {
                **released(TrackingStatus.PENDING, now),
                "scheduled_at": result.retry_at,
                "next_attempt_at": result.retry_at,
                "last_error": result.error,
            }
            return retry if result.attempts is None else {**retry, "attempts": result.attempts}
        case Outcome.FAILED:
            return {**released(TrackingStatus.FAILED, now), "last_error": result.error}
        case Outcome.UNCERTAIN:
            return {**released(TrackingStatus.UNCERTAIN, now), "last_error": result.error}
        case Outcome.SUPPRESSED:
            return {
                **released(TrackingStatus.SUPPRESSED, now),
                "message_id": None,
                "last_error": result.error,
            }
    raise AssertionError(result.outcome)


OUTCOME_EVENTS: Mapping[Outcome, EventType] = {
    Outcome.SENT: EventType.SENT,
    Outcome.BOUNCED: EventType.BOUNCE,
    Outcome.FAILED: EventType.FAILED,
    Outcome.UNCERTAIN: EventType.UNCERTAIN,
    Outcome.SUPPRESSED: EventType.SUPPRESSED,
}
"""The event each recorded outcome appends (a retry changes nothing a reader follows)."""


def changed_email(result: SendResult) -> ChangedEmail:
    """The email a send result is about, as its events name it."""
    return ChangedEmail(
        result.record_id, result.campaign_id, result.user_id, result.recipient_email
    )


def outcome_events(result: SendResult, now: datetime) -> list[EmailEvent]:
    """The event of an outcome recorded on its email (none for a retry)."""
    kind = OUTCOME_EVENTS.get(result.outcome)
    if kind is None:
        return []
    details: dict[str, Any] = {"source": "send"}
    if result.error:
        details["error"] = result.error
    if result.message_id:
        details["message_id"] = result.message_id
    return state_events([changed_email(result)], kind, now, details)


def ended_by(result: SendResult, stopped: list[ChangedEmail], now: datetime) -> list[EmailEvent]:
    """The `stopped` events of the person's later emails an outcome ended."""
    return state_events(stopped, EventType.STOPPED, now, {"because": result.outcome.value})
