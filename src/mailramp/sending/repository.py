"""What the sending engine needs from storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import PlanFunction
from mailramp.sending.heartbeats import WorkerHeartbeat
from mailramp.sending.models import ImportCounts, LifecycleReport, QueueDepth, SendResult
from mailramp.tracking.models import EmailTracking

RecipientBatches = AsyncIterator[Sequence[EmailTracking]]
"""A recipient file, parsed: its records in batches, as the importer yields them."""


@dataclass(frozen=True)
class Lease:
    """A worker's hold on the records it claims: whose it is, when it was taken, and until
    when no other worker may take them."""

    worker_id: str
    now: datetime
    until: datetime


class SendingRepository(Protocol):
    """The send queue. Methods without a user are for the worker and say so."""

    async def import_recipients(
        self, campaign: Campaign, batches: RecipientBatches, *, plan: PlanFunction
    ) -> ImportCounts:
        """In one unit of work: insert each batch (suppressed addresses left out, duplicates
        of recipients already in the campaign skipped), set `total_recipients` to the exact
        count, and schedule every pending record with `plan`. If the batches or the plan
        raise, nothing is stored."""
        ...

    async def resend_uncertain(self, user_id: str, campaign_id: str, *, now: datetime) -> int:
        """Put the user's uncertain records back in the queue, due now (their choice)."""
        ...

    async def run_lifecycle(self, *, now: datetime) -> LifecycleReport:
        """Start campaigns whose start_time came; expire what is unsent at end_time; complete
        campaigns with nothing left to send; turn expired `sending` leases `uncertain`."""
        ...

    async def sequence_emails(self, campaign_id: str, recipient_email: str) -> list[EmailTracking]:
        """Every email of one person in a campaign, by step (for the worker: the thread a
        follow-up answers)."""
        ...

    async def step_emails(self, campaign_id: str, step: int) -> list[EmailTracking]:
        """Every email of one step of a campaign (one per person who has it)."""
        ...

    async def highest_step(self, campaign_id: str) -> int:
        """The highest step number any email of the campaign has (1 with none)."""
        ...

    async def remove_step(
        self, campaign_id: str, step: int, *, next_step: int | None, now: datetime
    ) -> int:
        """Take a follow-up out of the campaign's emails: its emails not sent yet are
        deleted (those sent stay; each deleted one's `cancelled` event stays in the log),
        and where one was due, the person's `next_step` (if any) becomes due in its place,
        at its moment — in one unit of work. Returns how many emails were deleted."""
        ...

    async def claim_due(self, lease: Lease, *, limit: int) -> list[EmailTracking]:
        """Lease up to `limit` due records of active campaigns on sendable mailboxes, oldest
        first; no record is leased by two workers at once."""
        ...

    async def start_sending(self, lease: Lease, message_ids: dict[str, str]) -> set[str]:
        """Mark leased records `sending` with their Message-ID before they leave, if their
        campaign is still active; returns the ids now `sending` for this worker (only those
        may be sent)."""
        ...

    async def record_results(
        self, results: Sequence[SendResult], *, now: datetime, worker_id: str | None = None
    ) -> None:
        """Store outcomes, count them in the metrics and suppress bounced addresses, in one
        unit of work. A retry re-queues only a record still `sending` (not one whose lease
        ran out) — held by `worker_id` when given —, and one whose campaign was cancelled
        meanwhile is cancelled instead. Storing the same results again changes nothing."""
        ...

    async def release_claims(
        self, *, worker_id: str, record_ids: Collection[str] | None = None
    ) -> int:
        """Give back leased records that were never marked `sending` (all of the worker's,
        or just `record_ids`)."""
        ...

    async def record_heartbeat(self, beat: WorkerHeartbeat) -> None:
        """Store a worker's heartbeat (the last one per worker is kept)."""
        ...

    async def list_heartbeats(self) -> list[WorkerHeartbeat]:
        """Every worker's last heartbeat, most recent first."""
        ...

    async def forget_heartbeats(self, *, before: datetime) -> int:
        """Delete the heartbeats last written before `before`; how many."""
        ...

    async def take_reconciliation_turn(self, *, now: datetime, until: datetime) -> bool:
        """Whether this process reconciles now: one process at a time holds the turn until
        `until`. Where nothing needs reconciling (SQL), never."""
        ...

    async def complete_owed_outcomes(self, *, before: datetime) -> int:
        """Complete the consequences (events, next step, end of sequence) of outcomes
        recorded before `before` by a worker that died before finishing them; how many.
        Where an outcome is one transaction (SQL) nothing is ever owed: 0."""
        ...

    async def release_marked(self, *, worker_id: str, record_ids: Collection[str]) -> int:
        """Give back `record_ids` this worker marked `sending` (or tried to) but handed to
        no provider — marking them failed as far as it knows: pending again, lease free,
        the attempt not counted. A record not held by this worker is left alone."""
        ...

    async def put_back(self, *, worker_id: str, due: Mapping[str, datetime]) -> int:
        """Give back leased records never marked `sending`, each due again no earlier than
        its moment in `due` (a mailbox's daily limit or send gap holds them back)."""
        ...

    async def made_since(self, mailbox_id: str, since: datetime) -> int:
        """How many emails the mailbox made (sent, bounced at the door, being sent or maybe
        sent) since `since`, across all campaigns: what counts against its daily limit."""
        ...

    async def take_turn(
        self, mailbox_id: str, *, now: datetime, until: datetime
    ) -> datetime | None:
        """The mailbox's next send, atomically: when no turn is held past `now`, hold it
        until `until` and return None; otherwise return when the held turn ends."""
        ...

    async def queue_depth(self, *, now: datetime) -> QueueDepth:
        """Over every user (operator metrics; unscoped): how many records the next worker
        pass would claim — due, unleased, on a sendable mailbox, of a campaign that is
        active or whose start came, before its end — and how many are `sending`."""
        ...
