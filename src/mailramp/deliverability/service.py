"""Rolling up mailboxes' histories, applying the brakes, and each mailbox's health."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mailramp.campaigns.models import Campaign
from mailramp.campaigns.service import CampaignService
from mailramp.deliverability import brakes, warmup
from mailramp.deliverability.brakes import Reading
from mailramp.deliverability.history import recount_since, rolled_up
from mailramp.deliverability.repository import DeliverabilityRepository
from mailramp.errors import ConflictError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.mailboxes.models import DEFAULT_BRAKE_RULES, BrakeKind, Mailbox, MailboxDay
from mailramp.mailboxes.ramp import day_key, good_days, limit_today, ramp_of
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.mailboxes.service import MailboxService
from mailramp.metrics.models import percent
from mailramp.metrics.repository import MetricsRepository

log = logging.getLogger(__name__)

HEALTHY_PLACEMENT = 90.0
"""A health score (inbox placement over 7 days) above this is healthy, as the commercial
warm-up tools define it."""


class DeliverabilityStore(DeliverabilityRepository, MailboxRepository, MetricsRepository, Protocol):
    """What DeliverabilityService reads and writes."""


@dataclass(frozen=True)
class Period:
    """A mailbox's figures over its last `days` days."""

    days: int
    campaign_sent: int
    bounce_rate: float
    complaint_rate: float
    reply_rate: float
    warmup_sent: int
    warmup_found: int
    inbox_placement: float | None
    """Warm-up emails found in the inbox among those found anywhere; None before any."""


@dataclass(frozen=True)
class Health:
    """A mailbox's health: its last 7 and 30 days, its score, its ramp and its history."""

    mailbox: Mailbox
    week: Period
    month: Period
    score: float | None
    """Inbox placement of the last 7 days; None until warm-up emails were found."""
    healthy: bool | None
    limit_today: int
    ramp: list[int]
    """Its daily limit today and over the next days while it ramps up (empty when warm)."""
    history: list[MailboxDay]


def period(days: list[MailboxDay], now: datetime, span: int) -> Period:
    first = day_key(now - timedelta(days=span - 1))
    recent = [day for day in days if day.day >= first]
    sent = sum(day.campaign_sent for day in recent)
    found = sum(day.warmup_inbox + day.warmup_spam + day.warmup_other for day in recent)
    inbox = sum(day.warmup_inbox for day in recent)
    return Period(
        days=span,
        campaign_sent=sent,
        bounce_rate=percent(sum(day.bounced for day in recent), sent),
        complaint_rate=percent(sum(day.complained for day in recent), sent),
        reply_rate=percent(sum(day.replied for day in recent), sent),
        warmup_sent=sum(day.warmup_sent for day in recent),
        warmup_found=found,
        inbox_placement=percent(inbox, found) if found else None,
    )


@dataclass(frozen=True)
class MailboxGauges:
    """What /metrics says of one linked mailbox."""

    mailbox_id: str
    limit_today: int
    sent_today: int
    inbox_placement: float | None
    braked: bool


@dataclass(frozen=True)
class WarmupStatusRow:
    """One mailbox's warm-up today (`mailramp warmup status`)."""

    mailbox_id: str
    email: str
    enabled: bool
    volume_today: int
    warmup_sent_today: int
    inbox_placement: float | None
    limit_today: int
    braked: bool


class DeliverabilityService:
    """Histories, brakes and health, for every owner (the worker) or one (the interfaces)."""

    def __init__(
        self,
        store: DeliverabilityStore,
        mailboxes: MailboxService,
        campaigns: CampaignService,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._mailboxes = mailboxes
        self._campaigns = campaigns
        self._clock = clock

    # -- the worker's upkeep ------------------------------------------------------------

    async def roll_up(self) -> int:
        """Count again the last days of every linked mailbox's history; returns how many
        mailboxes were rolled up."""
        now = self._clock()
        boxes = await self._store.linked_mailboxes()
        for mailbox in boxes:
            await self._roll_up(mailbox, now)
        return len(boxes)

    async def _roll_up(self, mailbox: Mailbox, now: datetime) -> list[MailboxDay]:
        since = recount_since(now)
        sent = await self._store.campaign_emails_sent_since(mailbox.id, since)
        warmup = await self._store.warmup_sent_since(mailbox.id, since)
        stored = await self._store.mailbox_days(mailbox.id)
        rows = rolled_up(mailbox, sent, stored, now=now, new_id=new_object_id, warmup=warmup)
        await self._store.put_mailbox_days(rows)
        return rows

    async def apply_brakes(self) -> list[str]:
        """Pause the campaigns and stop the mailboxes whose brake's rule is met now;
        returns what was braked, as `campaign <id>` or `mailbox <id>`."""
        now = self._clock()
        braked = []
        for campaign in await self._store.sending_campaigns():
            if await self._brake_campaign(campaign, now):
                braked.append(f"campaign {campaign.campaign_id}")
        for mailbox in await self._store.linked_mailboxes():
            if mailbox.braked_at is None and await self._brake_mailbox(mailbox, now):
                braked.append(f"mailbox {mailbox.id}")
        return braked

    async def _brake_campaign(self, campaign: Campaign, now: datetime) -> bool:
        metrics = await self._store.get_metrics_unscoped(campaign.campaign_id)
        if metrics is None:
            return False
        rules = campaign.brake_rules or DEFAULT_BRAKE_RULES
        reading = brakes.bounce_reading(metrics.total_sent, metrics.total_bounced)
        if not self._due(BrakeKind.BOUNCES, reading, campaign, now):
            return False
        reason = brakes.bounce_reason(reading, rules)
        await self._campaigns.brake(campaign, BrakeKind.BOUNCES, reason)
        log.warning("campaign %s: %s", campaign.campaign_id, reason)
        for mailbox_id in campaign.mailbox_ids:
            mailbox = await self._store.get_mailbox_unscoped(mailbox_id)
            if mailbox is not None:
                await self._mark_braked(mailbox, now)
        return True

    async def _brake_mailbox(self, mailbox: Mailbox, now: datetime) -> bool:
        rules = mailbox.brake_rules or DEFAULT_BRAKE_RULES
        days = await self._store.mailbox_days(mailbox.id)
        for kind, reading in self._readings(days, now).items():
            if self._due(kind, reading, mailbox, now):
                reason = (
                    brakes.complaint_reason(reading, rules)
                    if kind is BrakeKind.COMPLAINTS
                    else brakes.placement_reason(reading, rules)
                )
                braked = await self._mailboxes.brake(mailbox, kind, reason)
                log.warning("mailbox %s: %s", mailbox.id, reason)
                await self._mark_braked(braked, now)
                return True
        return False

    @staticmethod
    def _readings(days: list[MailboxDay], now: datetime) -> dict[BrakeKind, Reading]:
        return {
            BrakeKind.COMPLAINTS: brakes.complaint_reading(days, now),
            BrakeKind.PLACEMENT: brakes.placement_reading(days, now),
        }

    @staticmethod
    def _due(kind: BrakeKind, reading: Reading, held: Campaign | Mailbox, now: datetime) -> bool:
        rules = held.brake_rules or DEFAULT_BRAKE_RULES
        if not brakes.enough(kind, reading, rules):
            return False
        value, threshold = brakes.watched(kind, reading, rules)
        same = held.brake_kind is kind
        return brakes.should_brake(
            value,
            threshold,
            resumed_at=held.brake_resumed_at if same else None,
            resumed_rate=held.brake_resumed_rate if same else None,
            now=now,
        )

    async def _mark_braked(self, mailbox: Mailbox, now: datetime) -> None:
        """Today counts as braked in the mailbox's history (its ramp does not grow on it)."""
        rows = await self._roll_up(mailbox, now)
        today = day_key(now)
        if not any(row.day == today and row.braked for row in rows):
            row = next((row for row in rows if row.day == today), None)
            marked = MailboxDay.model_validate(
                (row.model_dump(by_alias=True) if row else _empty_day(mailbox, today, now))
                | {"braked": True, "updated_at": now}
            )
            await self._store.put_mailbox_days([marked])

    # -- what a user asks -------------------------------------------------------------

    async def resume_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Lift the mailbox's brake; the figure it watched now is remembered, so the same
        brake waits 7 days unless it gets worse."""
        mailbox = await self._mailboxes.get_mailbox(user_id, mailbox_id)
        if mailbox.braked_at is None or mailbox.brake_kind is None:
            raise ConflictError("this mailbox is not held by a brake", field="braked_at")
        rules = mailbox.brake_rules or DEFAULT_BRAKE_RULES
        days = await self._store.mailbox_days(mailbox.id)
        reading = self._readings(days, self._clock())[mailbox.brake_kind]
        value, _ = brakes.watched(mailbox.brake_kind, reading, rules)
        return await self._mailboxes.resume_sending(user_id, mailbox_id, rate=value)

    async def gauges(self) -> list[MailboxGauges]:
        """Every linked mailbox's limit today, what it sent today, its health score and
        whether a brake holds it (Prometheus, at scrape time)."""
        now = self._clock()
        today = day_key(now)
        readings = []
        for mailbox in await self._store.linked_mailboxes():
            days = await self._store.mailbox_days(mailbox.id)
            sent = sum(day.sent for day in days if day.day == today)
            readings.append(
                MailboxGauges(
                    mailbox_id=mailbox.id,
                    limit_today=limit_today(mailbox, days, now),
                    sent_today=sent,
                    inbox_placement=period(days, now, 7).inbox_placement,
                    braked=mailbox.braked_at is not None,
                )
            )
        return readings

    async def warmup_status(self, user_id: str | None = None) -> list[WarmupStatusRow]:
        """Each mailbox's warm-up today: the user's mailboxes, or every linked one."""
        now = self._clock()
        today = day_key(now)
        boxes = (
            await self._mailboxes.list_mailboxes(user_id)
            if user_id is not None
            else await self._store.linked_mailboxes()
        )
        rows = []
        for mailbox in boxes:
            days = await self._store.mailbox_days(mailbox.id)
            rows.append(
                WarmupStatusRow(
                    mailbox_id=mailbox.id,
                    email=mailbox.email,
                    enabled=mailbox.warmup_enabled,
                    volume_today=warmup.volume_today(mailbox, days, now)
                    if mailbox.warmup_enabled
                    else 0,
                    warmup_sent_today=sum(d.warmup_sent for d in days if d.day == today),
                    inbox_placement=period(days, now, 7).inbox_placement,
                    limit_today=limit_today(mailbox, days, now),
                    braked=mailbox.braked_at is not None,
                )
            )
        return rows

    async def health(self, user_id: str, mailbox_id: str) -> Health:
        """The mailbox's figures over 7 and 30 days, its score and its ramp."""
        mailbox = await self._mailboxes.get_mailbox(user_id, mailbox_id)
        now = self._clock()
        days = await self._store.mailbox_days(mailbox.id)
        week = period(days, now, 7)
        ramp = ramp_of(mailbox)
        ahead = [] if ramp is None else ramp.to_target(good_days(days, now))
        score = week.inbox_placement
        return Health(
            mailbox=mailbox,
            week=week,
            month=period(days, now, 30),
            score=score,
            healthy=None if score is None else score > HEALTHY_PLACEMENT,
            limit_today=limit_today(mailbox, days, now),
            ramp=ahead,
            history=[day for day in days if day.day >= day_key(now - timedelta(days=29))],
        )


def _empty_day(mailbox: Mailbox, day: str, now: datetime) -> dict[str, object]:
    return {
        "_id": new_object_id(),
        "mailbox_id": mailbox.id,
        "user_id": mailbox.user_id,
        "day": day,
        "updated_at": now,
    }
