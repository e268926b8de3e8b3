"""Recipients in, send queue out: importing, counting and resending."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from typing import Any, BinaryIO, Protocol

from mailramp.campaigns.models import FINAL_STATUSES, Campaign, FollowUp
from mailramp.campaigns.repository import CampaignQueue, CampaignRepository, PlanFunction
from mailramp.campaigns.scheduling import campaign_mailboxes, campaign_plan, plan_function
from mailramp.campaigns.schemas import StepsUpdate
from mailramp.campaigns.service import owned_campaign
from mailramp.campaigns.steps import follow_ups_after
from mailramp.errors import ConflictError, NotEditableError, NotFoundError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.types import parse_input
from mailramp.kit.validation import object_id_arg
from mailramp.mailboxes.models import NO_GAP, SendGap
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.sending.export import export_rows
from mailramp.sending.importer import RecipientReader
from mailramp.sending.message import build_message, thread_for
from mailramp.sending.models import ImportReport
from mailramp.sending.repository import SendingRepository
from mailramp.sending.steps import added_step_emails, check_before_end
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import EmailTracking, TrackingStatus
from mailramp.tracking.repository import RecipientQuery, TrackingRepository


@dataclass(frozen=True)
class Preview:
    """One recipient's email as it would leave now: its headers, its text part, and its
    HTML part (None for a plain-text campaign)."""

    record_id: str
    recipient: str
    headers: list[tuple[str, str]]
    text: str
    html: str | None
    step: int = 1
    """The step it is (a follow-up goes in the thread of the emails before it)."""


class RecipientStore(
    SendingRepository,
    CampaignRepository,
    CampaignQueue,
    MailboxRepository,
    TrackingRepository,
    Protocol,
):
    """What SendingService reads and writes."""


class SendingService:
    """What users do to a campaign's recipients."""

    def __init__(
        self, store: RecipientStore, *, clock: Clock = utc_now, send_gap: SendGap = NO_GAP
    ) -> None:
        self._store = store
        self._clock = clock
        self._send_gap = send_gap
        """The pause between two sends of a mailbox, which plans leave room for."""

    async def _campaign(self, user_id: str, campaign_id: str) -> Campaign:
        return await owned_campaign(self._store, user_id, campaign_id)

    async def import_recipients(
        self,
        user_id: str,
        campaign_id: str,
        stream: BinaryIO,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import a CSV of recipients into a campaign that has not finished.

        All or nothing: a file that is not UTF-8 CSV with an `email` column, a required
        variable missing in a row, or recipients that would not fit the plan import nothing.
        Invalid addresses are skipped and listed; duplicates and suppressed addresses are
        counted. Every pending recipient is (re)scheduled across the remaining window.
        """
        campaign = await self._campaign(user_id, campaign_id)
        if campaign.status in FINAL_STATUSES:
            raise ConflictError(
                f"the campaign is {campaign.status}; recipients cannot be added", field="status"
            )
        mailboxes = await campaign_mailboxes(self._store, campaign)
        now = self._clock()
        report = ImportReport()
        reader = RecipientReader(
            stream,
            campaign,
            now=now,
            report=report,
            on_progress=on_progress,
        )
        plan = await plan_function(
            self._store, campaign, mailboxes, now=now, send_gap=self._send_gap
        )
        counts = await self._store.import_recipients(campaign, reader.batches(), plan=plan)
        report.accepted = counts.accepted
        report.duplicates += counts.duplicates
        report.suppressed = counts.suppressed
        report.total_recipients = counts.total_recipients
        return report

    async def set_steps(self, user_id: str, campaign_id: str, **fields: Any) -> Campaign:
        """Replace the campaign's follow-ups (StepsUpdate), before or while it runs: kept
        steps change for the emails not sent yet, removed ones are taken out of every
        person's sequence, added ones join every sequence still going
        (sending/steps.py). A finished campaign's steps are what it sent: refused."""
        campaign = await self._campaign(user_id, campaign_id)
        if campaign.status in FINAL_STATUSES:
            raise NotEditableError(
                f"the campaign is {campaign.status}; its steps can no longer change",
                field="status",
            )
        data = parse_input(StepsUpdate, fields)
        existing = campaign.campaign_steps
        used = await self._store.highest_step(campaign.campaign_id)
        first_free = max([used, *(f.step for f in existing)]) + 1
        steps = follow_ups_after(data.campaign_steps, existing, first_free)
        now = self._clock()
        added = await self._added_emails(campaign, steps, now)
        # People still waiting for their first email get their sequences planned again
        # with the new steps (PlanError, before anything changes, when they no longer fit).
        replan = await self._plan_for_steps(campaign.model_copy(update={"campaign_steps": steps}))
        updated = await self._store.update_campaign(
            campaign, {"campaign_steps": steps, "updated_at": now}
        )
        if updated is None:
            raise ConflictError(
                "the campaign changed status while its steps were being changed; try again",
                field="status",
            )
        kept = {f.step for f in steps}
        for gone in (f.step for f in existing if f.step not in kept):
            after = updated.step_after(gone)
            await self._store.remove_step(
                campaign.campaign_id, gone, next_step=after.step if after else None, now=now
            )
        for emails in added.values():
            for start in range(0, len(emails), 1000):
                await self._store.insert_tracking(emails[start : start + 1000])
        if replan is not None:
            await self._store.replan_pending(updated, plan=replan)
        return updated

    async def _plan_for_steps(self, changed: Campaign) -> PlanFunction | None:
        """The plan of the pending first emails' sequences with the changed steps, checked
        to fit; None when nobody waits for a first email or the window is over."""
        now = self._clock()
        waiting = await self._store.pending_schedule(changed.user_id, changed.campaign_id)
        if not waiting.first_emails or now >= changed.end_time:
            return None
        mailboxes = await campaign_mailboxes(self._store, changed)
        plan = await campaign_plan(
            self._store, changed, mailboxes, now=now, send_gap=self._send_gap
        )
        plan.check_fits(waiting.first_emails)
        return plan.slots

    async def _added_emails(
        self, campaign: Campaign, steps: list[FollowUp], now: datetime
    ) -> dict[int, list[EmailTracking]]:
        """The emails of the steps `steps` adds to the campaign, by step (sending/steps.py);
        a ValidationError naming the step when one would be due after the campaign ends
        for someone already written to (those still waiting for their first email are
        planned again whole: _plan_for_steps)."""
        changed = campaign.model_copy(update={"campaign_steps": steps})
        before_change = {f.step for f in campaign.campaign_steps}
        if all(f.step in before_change for f in steps):
            return {}  # nothing added: no email to make, nothing to read
        started = {
            e.recipient_email
            for e in await self._store.step_emails(campaign.campaign_id, 1)
            if e.status is not TrackingStatus.PENDING
        }
        numbers = changed.steps
        added: dict[int, list[EmailTracking]] = {}
        for follow_up in (f for f in steps if f.step not in before_change):
            before = numbers[numbers.index(follow_up.step) - 1]
            previous = added.get(before) or await self._store.step_emails(
                campaign.campaign_id, before
            )
            emails = added_step_emails(changed, follow_up, previous, now=now)
            check_before_end(
                changed, follow_up, [e for e in emails if e.recipient_email in started]
            )
            added[follow_up.step] = emails
        return added

    async def resend_uncertain(self, user_id: str, campaign_id: str) -> int:
        """Queue the campaign's uncertain records again — only when the user asks, since the
        recipient may already have the message."""
        campaign = await self._campaign(user_id, campaign_id)
        return await self._store.resend_uncertain(
            campaign.user_id, campaign.campaign_id, now=self._clock()
        )

    async def preview(
        self,
        user_id: str,
        campaign_id: str,
        record_id: str | None,
        links: TrackingLinks,
        *,
        step: int | None = None,
    ) -> Preview | None:
        """The email of one of the campaign's recipients (the first, unless `record_id`
        names one) — or that person's email of `step` — built as the worker builds it (with
        these tracking `links`, in the thread of the emails before it); None for a
        campaign without recipients."""
        campaign = await self._campaign(user_id, campaign_id)
        if record_id is not None:
            record = await self._store.get_tracking(
                campaign.user_id, object_id_arg(record_id, field="record_id")
            )
            if record is None or record.campaign_id != campaign.campaign_id:
                raise NotFoundError("recipient", record_id)
        else:
            first = await self._store.list_tracking(
                campaign.user_id, RecipientQuery(campaign.campaign_id, limit=1)
            )
            if not first.items:
                return None
            record = first.items[0]
        sequence = []
        if (step is not None and step != record.step) or record.step != 1:
            sequence = await self._store.sequence_emails(
                campaign.campaign_id, record.recipient_email
            )
        if step is not None:  # a person whose sequence ended before it keeps this one
            record = next((e for e in sequence if e.step == step), record)
        thread = thread_for(campaign, record, sequence) if record.step != 1 else None
        # From the mailbox that sends (or sent) it.
        mailbox = await self._store.get_mailbox(campaign.user_id, record.mailbox_id)
        if mailbox is None:
            raise NotFoundError("mailbox", record.mailbox_id)
        now = self._clock()
        # Without its (invisible) open pixel: showing the preview must not look like an open.
        shown = campaign.model_copy(update={"track_opens": False})
        message = build_message(
            campaign=shown,
            mailbox=mailbox,
            record=record,
            sent_at=now,
            tracking=links,
            thread=thread,
        )
        parts = {part.get_content_subtype(): _decoded(part) for part in message.walk()}
        return Preview(
            record_id=record.id,
            recipient=record.recipient_email,
            headers=[(name, _header_text(value)) for name, value in message.items()],
            text=parts.get("plain", ""),
            html=parts.get("html"),
            step=record.step,
        )

    async def status_counts(self, user_id: str, campaign_id: str) -> dict[str, int]:
        """How many of the campaign's records are in each status (all statuses listed)."""
        campaign = await self._campaign(user_id, campaign_id)
        counts = await self._store.count_tracking_by_status(campaign.user_id, campaign.campaign_id)
        return {status.value: counts.get(status.value, 0) for status in TrackingStatus}

    def export_rows(self, campaign: Campaign) -> AsyncIterator[list[str]]:
        """The campaign's recipients and what happened to each, as spreadsheet-safe CSV
        rows, header first (the caller fetched `campaign` as its owner)."""
        return export_rows(self._store, campaign)


def _header_text(value: object) -> str:
    return str(make_header(decode_header(str(value))))


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(part.get_content_charset() or "utf-8", "replace")
