"""Recipients in, send queue out: importing, re-planning, cancelling and resending."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from mailramp.campaigns.models import FINAL_STATUSES, Campaign
from mailramp.errors import ConflictError, NotFoundError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.validation import campaign_id_arg, object_id_arg
from mailramp.sending.importer import RecipientReader
from mailramp.sending.models import ImportReport
from mailramp.sending.scheduling import plan_function
from mailramp.storage import Store
from mailramp.tracking.models import TrackingStatus


class SendingService:
    """What users do to a campaign's recipients."""

    def __init__(self, store: Store, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def _campaign(self, user_id: str, campaign_id: str) -> Campaign:
        campaign = await self._store.get_campaign(
            object_id_arg(user_id, field="user_id"), campaign_id_arg(campaign_id)
        )
        if campaign is None:
            raise NotFoundError("campaign", campaign_id)
        return campaign

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
                f"status: the campaign is {campaign.status}; recipients cannot be added"
            )
        mailbox = await self._store.get_mailbox(campaign.user_id, campaign.mailbox_id)
        if mailbox is None:
            raise NotFoundError("mailbox", campaign.mailbox_id)
        now = self._clock()
        report = ImportReport()
        reader = RecipientReader(
            stream,
            campaign,
            now=now,
            report=report,
            on_progress=on_progress,
        )
        plan = await plan_function(self._store, campaign, mailbox, now=now)
        counts = await self._store.import_recipients(campaign, reader.batches(), plan=plan)
        report.accepted = counts.accepted
        report.duplicates += counts.duplicates
        report.suppressed = counts.suppressed
        report.total_recipients = counts.total_recipients
        return report

    async def replan(self, user_id: str, campaign_id: str) -> int:
        """Spread the pending recipients across what is left of the window."""
        campaign = await self._campaign(user_id, campaign_id)
        return await self.replan_campaign(campaign)

    async def replan_campaign(self, campaign: Campaign) -> int:
        """Re-plan an already-loaded campaign (after a resume or an edit)."""
        now = self._clock()
        if now >= campaign.end_time:
            return 0  # nothing can be scheduled; the lifecycle expires what is left
        mailbox = await self._store.get_mailbox(campaign.user_id, campaign.mailbox_id)
        if mailbox is None:
            raise NotFoundError("mailbox", campaign.mailbox_id)
        plan = await plan_function(self._store, campaign, mailbox, now=now)
        return await self._store.replan_pending(campaign, plan=plan)

    async def cancel_pending(self, campaign: Campaign) -> int:
        """Mark every record that has not left `cancelled`."""
        return await self._store.cancel_pending(campaign.campaign_id, now=self._clock())

    async def resend_uncertain(self, user_id: str, campaign_id: str) -> int:
        """Queue the campaign's uncertain records again — only when the user asks, since the
        recipient may already have the message."""
        campaign = await self._campaign(user_id, campaign_id)
        return await self._store.resend_uncertain(
            campaign.user_id, campaign.campaign_id, now=self._clock()
        )

    async def status_counts(self, user_id: str, campaign_id: str) -> dict[str, int]:
        """How many of the campaign's records are in each status (all statuses listed)."""
        campaign = await self._campaign(user_id, campaign_id)
        counts = await self._store.count_tracking_by_status(campaign.user_id, campaign.campaign_id)
        return {status.value: counts.get(status.value, 0) for status in TrackingStatus}
