"""What tracking requests and inbox messages do: check the token, classify, log the event,
count the first of each kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from mailramp.campaigns.models import MAX_STEPS, Campaign
from mailramp.campaigns.repository import CampaignRepository
from mailramp.campaigns.service import owned_campaign
from mailramp.errors import ConflictError, NotFoundError, ValidationError, found
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import object_id_time
from mailramp.kit.signing import InvalidToken, Purpose, TokenSigner
from mailramp.kit.types import Page
from mailramp.kit.validation import enum_arg, object_id_arg
from mailramp.metrics.models import CampaignMetrics
from mailramp.tracking.classify import (
    PERSON,
    TRAP_LINK,
    MachineRules,
    Verdict,
    Visitor,
    judge_link,
    judge_open,
    settle,
)
from mailramp.tracking.events import (
    CLICK,
    OPEN,
    REPLY,
    STOPPED,
    TRAP,
    UNSUBSCRIBE,
    UNSUBSCRIBE_PAGE,
    EventKind,
    EventSource,
)
from mailramp.tracking.links import TRAP_LINK_INDEX, click_destination
from mailramp.tracking.models import (
    SETTLING,
    EmailEvent,
    EmailTracking,
    EventType,
    TrackingStatus,
    UnmatchedInbound,
)
from mailramp.tracking.repository import (
    EventChange,
    EventLogQuery,
    RecipientQuery,
    SettledEvent,
    TrackingRepository,
)
from mailramp.tracking.stops import stop_company

MAX_AGENT = 500


class EventMetrics(Protocol):
    """What tracking reports for monitoring (`mailramp.observability.Telemetry`)."""

    def count_event(self, event: EventType, *, source: EventSource) -> None:
        """One tracking event was recorded."""
        ...


class _Unmeasured:
    def count_event(self, event: EventType, *, source: EventSource) -> None:
        pass


def unmeasured() -> EventMetrics:
    """Event metrics nobody reads."""
    return _Unmeasured()


@dataclass(frozen=True)
class UnsubscribeTarget:
    """What the unsubscribe page shows."""

    record: EmailTracking
    campaign: Campaign
    already: bool


@dataclass(frozen=True)
class RecipientFilter:
    """Which of a campaign's recipients a list shows, as a caller asks for them: a status
    by name (checked), a fragment of the address, one page, the emails of one step (all
    steps if None; step 1 lists each person once)."""

    status: str | None = None
    search: str | None = None
    offset: int = 0
    limit: int = 50
    step: int | None = None


ALL_RECIPIENTS = RecipientFilter()


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a person's timeline: when, at which step of the sequence (its place in
    the order, 1 the first email), what (`sent`, or an event's type) and the event."""

    at: datetime
    step: int
    kind: str
    event: EmailEvent | None


REPLIABLE = frozenset({TrackingStatus.SENT, TrackingStatus.UNCERTAIN, TrackingStatus.BOUNCED})
"""States of an email its recipient may have answered (it left, or may have)."""


class TrackingStore(TrackingRepository, CampaignRepository, Protocol):
    """What TrackingService reads and writes."""


class TrackingService:
    """Opens, clicks and unsubscribes from signed links; replies and bounces from inboxes."""

    def __init__(
        self,
        store: TrackingStore,
        signer: TokenSigner,
        *,
        clock: Clock = utc_now,
        metrics: EventMetrics | None = None,
        wall_clock: Clock = utc_now,
        rules: MachineRules | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self.rules = rules or MachineRules()
        self._wall_clock = wall_clock  # the clock ObjectIds carry (event_log's settling)
        self._metrics = metrics or unmeasured()

    async def _record_for(self, token: str, purpose: Purpose) -> tuple[EmailTracking, int] | None:
        try:
            data = self._signer.verify(token, purpose)
        except InvalidToken:
            return None
        record = await self._store.get_tracking_unscoped(data.record_id)
        if record is None:
            return None
        return record, data.link_index

    def _details(self, visitor: Visitor, **extra: Any) -> dict[str, Any]:
        details: dict[str, Any] = {"method": visitor.method.upper()[:10]}
        if visitor.user_agent:
            details["user_agent"] = visitor.user_agent[:MAX_AGENT]
        if visitor.ip:
            details["ip_hash"] = self._signer.fingerprint(visitor.ip)
        return details | extra

    def _event(
        self,
        record: EmailTracking,
        kind: EventType,
        verdict: Verdict,
        details: dict[str, Any],
        at: datetime | None = None,
    ) -> EmailEvent:
        if verdict.found:
            details = details | {"machine": verdict.found}
        return EmailEvent.about(
            record, kind, at or self._clock(), details=details, machine=verdict.reason
        )

    async def _record(self, event: EmailEvent, change: EventChange) -> None:
        await self._store.record_event(event, change)
        if not event.settling:  # a settling one is counted when it settles
            self._metrics.count_event(event.type, source="machine" if event.machine else "human")

    async def _fetched(
        self,
        record: EmailTracking,
        kind: EventKind,
        verdict: Verdict,
        details: dict[str, Any],
        at: datetime,
    ) -> None:
        """Log a request for one of the message's URLs, made `at` (when it arrived: the
        time bursts are measured by, before any lookup). Only what any request counts moves
        now; a person's counters wait until the request settles (`settle`)."""
        await self._record(
            self._event(record, kind.type, verdict, details, at),
            EventChange(firsts=kind.firsts_for(human=False)),
        )

    async def open(self, token: str, visitor: Visitor) -> bool:
        """Log an open from the pixel; False (and nothing logged) for a bad token."""
        at = self._clock()
        found = await self._record_for(token, Purpose.OPEN)
        if found is None:
            return False
        record, _ = found
        verdict = judge_open(self.rules, visitor)
        await self._fetched(record, OPEN, verdict, self._details(visitor), at)
        return True

    async def answer_open(self, token: str, visitor: Visitor) -> bool:
        """Note an open of an answer sent from the inbox with its opens tracked (never a
        campaign counter); False for a bad token."""
        try:
            data = self._signer.verify(token, Purpose.ANSWER_OPEN)
        except InvalidToken:
            return False
        # Nothing settles here: an answer has no burst to belong to.
        verdict = judge_open(self.rules, visitor)
        return await self._store.record_answer_open(
            data.record_id, at=self._clock(), human=verdict.reason in (None, SETTLING)
        )

    async def click(self, token: str, visitor: Visitor) -> str | None:
        """Log a click and return where it goes — the link of the stored message; None for
        a bad token or a link that is not in the message."""
        at = self._clock()
        found = await self._record_for(token, Purpose.CLICK)
        if found is None:
            return None
        record, index = found
        campaign = await self._store.get_campaign_unscoped(record.campaign_id)
        if campaign is None:
            return None
        # Their variant and its spintax, as they got it.
        sent = campaign.for_recipient(record.recipient_email, record.variant, record.step)
        if index == TRAP_LINK_INDEX:
            # No person sees it: whatever fetched it is a machine, and so is its burst.
            await self._fetched(record, TRAP, Verdict(TRAP_LINK), self._details(visitor), at)
            return click_destination(sent, 0, record.merge_values())
        url = click_destination(sent, index, record.merge_values())
        if url is None:
            return None
        verdict = judge_link(self.rules, visitor, sent_at=record.sent_at, now=at)
        details = self._details(visitor, link_index=index, url=url[:2000])
        await self._fetched(record, CLICK, verdict, details, at)
        return url

    async def unsubscribe_target(self, token: str) -> UnsubscribeTarget | None:
        """What an unsubscribe link is for (the GET page changes nothing)."""
        found = await self._record_for(token, Purpose.UNSUBSCRIBE)
        if found is None:
            return None
        record, _ = found
        campaign = await self._store.get_campaign_unscoped(record.campaign_id)
        if campaign is None:
            return None
        return UnsubscribeTarget(record, campaign, already=record.unsubscribed_at is not None)

    async def unsubscribe_page(self, token: str, visitor: Visitor) -> UnsubscribeTarget | None:
        """What an unsubscribe link is for, noting that it was fetched (nothing changes:
        a person presses the page's button, a link scanner fetches it with the rest)."""
        at = self._clock()
        target = await self.unsubscribe_target(token)
        if target is None:
            return None
        record = target.record
        verdict = judge_link(self.rules, visitor, sent_at=record.sent_at, now=at)
        await self._fetched(record, UNSUBSCRIBE_PAGE, verdict, self._details(visitor), at)
        return target

    async def settle(self) -> int:
        """Decide the opens and clicks whose settling window has passed: a machine's (in a
        scanner's burst) or a person's, whose counters move now, in the same unit of work
        as the verdict. How many were decided."""
        now = self._clock()
        decided = 0
        for email in await self._store.unsettled_emails(
            before=now - self.rules.settle, limit=SETTLE_BATCH
        ):
            # A burst reaching further back than one settling window is read from there.
            events = await self._store.list_fetches(
                email.user_id,
                email.record_id,
                since=email.since - self.rules.settle,
                limit=MAX_FETCHES,
            )
            if len(events) == MAX_FETCHES:  # a flood: decide the oldest due first
                events = await self._store.list_fetches(
                    email.user_id, email.record_id, since=email.since, limit=MAX_FETCHES
                )
            verdicts = settle(events, self.rules, now=now)
            settled = [settled_event(event, verdict) for event, verdict in verdicts]
            for event in await self._store.settle_events(email.record_id, settled):
                self._metrics.count_event(
                    event.type, source="machine" if event.machine else "human"
                )
                decided += 1
        return decided

    async def unsubscribe(self, token: str, visitor: Visitor) -> UnsubscribeTarget | None:
        """Unsubscribe the recipient from all of the sender's campaigns; repeating it
        changes nothing more."""
        target = await self.unsubscribe_target(token)
        if target is None:
            return None
        record = target.record
        await self._record(
            self._event(record, UNSUBSCRIBE.type, PERSON, self._details(visitor)),
            EventChange(
                firsts=UNSUBSCRIBE.firsts_for(human=True),
                suppress=UNSUBSCRIBE.suppression(record, now=self._clock()),
                stops_sequence=UNSUBSCRIBE.stops_sequence,
            ),
        )
        return target

    async def recompute(self, user_id: str, campaign_id: str) -> CampaignMetrics:
        """Rebuild the user's campaign's counters from its event log."""
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        return found(
            await self._store.recompute_metrics(campaign.campaign_id, now=self._clock()),
            "campaign metrics",
            campaign_id,
        )

    async def series(self, user_id: str, campaign_id: str) -> list[dict[str, Any]]:
        """Events per hour for the user's campaign."""
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        return await self._store.event_series(campaign.user_id, campaign.campaign_id)

    async def list_recipients(
        self, user_id: str, campaign_id: str, wanted: RecipientFilter = ALL_RECIPIENTS
    ) -> Page[EmailTracking]:
        """The user's campaign's recipients with their state, in send order, as `wanted`
        says (a status, an address fragment, a page)."""
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        status = enum_arg(TrackingStatus, wanted.status, field="status") if wanted.status else None
        query = RecipientQuery(
            campaign.campaign_id,
            status=status,
            offset=wanted.offset,
            limit=wanted.limit,
            search=(wanted.search or "").strip()[:254] or None,
            step=wanted.step,
        )
        return await self._store.list_tracking(campaign.user_id, query)

    async def list_unmatched(
        self, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[UnmatchedInbound]:
        """The bounces and complaints found in the user's inboxes that match no email they
        sent (a message sent outside mailramp, an address that forwards), newest first."""
        owner = object_id_arg(user_id, field="user_id")
        return await self._store.list_unmatched(owner, offset=offset, limit=limit)

    async def recipient_events(
        self, user_id: str, campaign_id: str, record_id: str
    ) -> tuple[EmailTracking, list[EmailEvent]]:
        """One recipient of the user's campaign and what happened to their email, oldest
        first."""
        record = await self.recipient(user_id, campaign_id, record_id)
        return record, await self._store.list_events(record.user_id, record.id)

    async def event_log(
        self,
        user_id: str,
        *,
        after: int = 0,
        campaign_id: str | None = None,
        kinds: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[EmailEvent]:
        """The user's events numbered after `after`, in number order (the event log read by
        cursor): of one campaign, of some kinds, from `since` until before `until`.

        An open or click is read once it has settled (a person's or a machine's for good):
        what is returned stops before the first still settling.

        A reader never gets number n+1 before n: what is returned stops before a missing
        number (another writer's event being stored; on MongoDB, without transactions, for
        a moment) unless the event after it was made more than EVENT_SETTLE ago by the wall
        clock its id carries (then the number was lost to a crash, and never comes)."""
        if after < 0:
            raise ValidationError("after", f"must be 0 or more, got {after}")
        if not 1 <= limit <= MAX_EVENT_PAGE:
            raise ValidationError("limit", f"must be 1 to {MAX_EVENT_PAGE}, got {limit}")
        wanted = [enum_arg(EventType, kind, field="kind") for kind in kinds]
        if campaign_id is not None:
            campaign_id = (await owned_campaign(self._store, user_id, campaign_id)).campaign_id
        query = EventLogQuery(after, campaign_id, tuple(wanted), since, until, limit)
        owner = object_id_arg(user_id, field="user_id")
        events = await self._store.list_event_log(owner, query)
        waiting = next((event for event in events if event.settling), None)
        if waiting is not None and waiting.occurred_at <= self._clock() - self.rules.settle:
            await self.settle()  # no worker has decided it yet: decide it now
            events = await self._store.list_event_log(owner, query)
        events = decided(events)
        if query.filtered:
            return events  # a filtered read skips numbers by design
        return readable(events, after, wall=self._wall_clock(), settle=EVENT_SETTLE)

    async def recipient_timeline(
        self, user_id: str, campaign_id: str, record_id: str
    ) -> tuple[EmailTracking, list[EmailTracking], list[TimelineEntry]]:
        """One person of the user's campaign (named by any of their emails): that email,
        all their emails by step, and what happened to them across the sequence, oldest
        first — each email's sending, then its events, each with the step's place."""
        record = await self.recipient(user_id, campaign_id, record_id)
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        query = RecipientQuery(
            campaign.campaign_id, search=record.recipient_email, limit=MAX_STEPS * 4
        )
        emails = sorted(
            (
                email
                for email in (await self._store.list_tracking(campaign.user_id, query)).items
                if email.recipient_email == record.recipient_email
            ),
            key=lambda email: email.step,
        )
        order = {step: place for place, step in enumerate(campaign.steps, start=1)}
        entries = []
        for email in emails:
            place = order.get(email.step, email.step)
            events = await self._store.list_events(email.user_id, email.id)
            logged = any(event.type is EventType.SENT for event in events)
            if email.sent_at is not None and not logged:  # sent before the log said so
                entries.append(TimelineEntry(email.sent_at, place, "sent", None))
            for event in events:
                entries.append(TimelineEntry(event.occurred_at, place, event.type.value, event))
        entries.sort(key=lambda entry: (entry.at, entry.kind != "sent"))
        return record, emails, entries

    async def find_recipient(self, user_id: str, campaign_id: str, email: str) -> EmailTracking:
        """The recipient of the user's campaign with this address (any case): their first
        email."""
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        wanted = email.strip().lower()
        query = RecipientQuery(campaign.campaign_id, search=wanted[:254], limit=50, step=1)
        for record in (await self._store.list_tracking(campaign.user_id, query)).items:
            if record.recipient_email == wanted:
                return record
        raise NotFoundError("recipient", email)

    async def mark_replied(self, user_id: str, campaign_id: str, record_id: str) -> EmailTracking:
        """Record, by hand, a reply that came another way (a call, another address): counted
        as their reply, and it ends their sequence. Only someone who was emailed can have
        replied (ConflictError otherwise)."""
        record = await self.recipient(user_id, campaign_id, record_id)
        if record.sent_at is None and record.status not in REPLIABLE:
            raise ConflictError(
                f"{record.recipient_email} has not been emailed ({record.status}): nothing to "
                "reply to; stop them instead",
                field="record_id",
            )
        change = EventChange(firsts=REPLY.firsts_for(human=False), stops_sequence=True)
        await self._by_hand(record, REPLY.type, change)
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        for _ in await stop_company(self._store, campaign, record, now=self._clock()):
            self._metrics.count_event(STOPPED.type, source="manual")
        return await self.recipient(user_id, campaign_id, record_id)

    async def stop(self, user_id: str, campaign_id: str, record_id: str) -> EmailTracking:
        """Stop a person by hand: their emails not sent yet are stopped (in the same unit of
        work as the `stopped` event, so no worker can claim one after), and their sequence
        ends. Stopping someone stopped before changes nothing."""
        record = await self.recipient(user_id, campaign_id, record_id)
        events = await self._store.list_events(record.user_id, record.id)
        if any(event.type == EventType.STOPPED for event in events):
            return record
        change = EventChange(firsts=STOPPED.firsts_for(human=False), stops_sequence=True)
        await self._by_hand(record, STOPPED.type, change)
        return await self.recipient(user_id, campaign_id, record_id)

    async def _by_hand(self, record: EmailTracking, kind: EventType, change: EventChange) -> None:
        event = EmailEvent.about(record, kind, self._clock(), details={"source": "manual"})
        await self._store.record_event(event, change)
        self._metrics.count_event(kind, source="manual")

    async def recipient(self, user_id: str, campaign_id: str, record_id: str) -> EmailTracking:
        """One email of the user's campaign, by id (NotFoundError if it is not one of it)."""
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        record = await self._store.get_tracking(
            campaign.user_id, object_id_arg(record_id, field="record_id")
        )
        if record is None or record.campaign_id != campaign.campaign_id:
            raise NotFoundError("recipient", record_id)
        return record


def settled_event(event: EmailEvent, verdict: Verdict) -> SettledEvent:
    """What settling writes for one event: its verdict, and a person's counters."""
    kind = {OPEN.type: OPEN, CLICK.type: CLICK}.get(event.type)
    person = verdict.reason is None
    decided = event.model_copy(
        update={
            "machine": not person,
            "machine_reason": verdict.reason,
            "details": event.details | ({"machine": verdict.found} if verdict.found else {}),
        }
    )
    firsts = dict(kind.human_firsts) if kind is not None and person else {}
    return SettledEvent(decided, firsts)


SETTLE_BATCH = 500
"""How many emails one settling pass decides at most."""
MAX_FETCHES = 1000
"""How many of an email's events settling reads (a scanner that fetches more is one)."""
MAX_EVENT_PAGE = 1000
EVENT_SETTLE = timedelta(seconds=10)
"""How long a reader by cursor waits for a missing event number before passing it over."""


def decided(events: Sequence[EmailEvent]) -> list[EmailEvent]:
    """The events before the first whose verdict is not decided yet."""
    taken = []
    for event in events:
        if event.settling:
            break
        taken.append(event)
    return taken


def readable(
    events: Sequence[EmailEvent], after: int, *, wall: datetime, settle: timedelta
) -> list[EmailEvent]:
    """The events a reader by cursor may take now: in number order up to the first missing
    number, unless the event after the gap is older than `settle` (by `wall`, the clock of
    the ids)."""
    taken: list[EmailEvent] = []
    expected = after + 1
    for event in events:
        if event.seq != expected and object_id_time(event.id) > wall - settle:
            break
        taken.append(event)
        expected = (event.seq or expected) + 1
    return taken
