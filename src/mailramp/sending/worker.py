"""The worker: lease due records, mark them `sending`, hand them to the provider, record
what happened. Safe to run as many times over as the backend allows (see storage).

At most once: a record is `sending`, with its Message-ID stored, before its message leaves.
If the worker dies, the lease expires and the lifecycle pass turns the record `uncertain`;
it is never sent again unless a person asks. Records leased but not yet `sending` are simply
leased again by someone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mailramp.campaigns.models import Campaign
from mailramp.campaigns.repository import CampaignRepository
from mailramp.campaigns.sequencing import after_delay
from mailramp.errors import (
    DatabaseUnavailableError,
    MailboxUnusableError,
    PermanentSendError,
    ProviderError,
    ServerUnavailableError,
    ThrottledError,
    TransientSendError,
    UncertainSendError,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.coalesce import Coalescer
from mailramp.mailboxes.models import DEFAULT_SEND_GAP, Mailbox, SendGap
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.mailboxes.service import MailboxService
from mailramp.mailboxes.transport import ProviderFactory, ReportsSentMessageId
from mailramp.mailboxes.transport import SendingProvider as Provider
from mailramp.sending import pacing
from mailramp.sending.heartbeats import FORGET_AFTER, WorkerHeartbeat, beat_interval
from mailramp.sending.message import Thread, build_message, message_id_for, thread_for
from mailramp.sending.models import NextStep, Outcome, SendResult
from mailramp.sending.repository import Lease, SendingRepository
from mailramp.suppression.repository import SuppressionRepository
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import EmailTracking

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker paces itself."""

    lease_seconds: float = 120
    batch_size: int = 200
    in_flight_per_mailbox: int = 5
    """Records marked `sending` together before they go out; after a crash at most this many
    per mailbox are `uncertain`."""
    max_attempts: int = 5
    retry_base_seconds: float = 60
    poll_seconds: float = 1.0
    send_gap: SendGap = DEFAULT_SEND_GAP
    """The random pause between two sends of one mailbox (sending/pacing.py)."""


class WorkerMetrics(Protocol):
    """What a worker reports for monitoring (`mailramp.observability.Telemetry`)."""

    def observe_claim(self, seconds: float) -> None:
        """One claim transaction took `seconds`."""
        ...

    def observe_send(self, seconds: float) -> None:
        """Handing one message to its provider took `seconds`."""
        ...

    def count_outcome(self, outcome: Outcome) -> None:
        """One record's send attempt ended in `outcome`."""
        ...


class _Unmeasured:
    """Metrics nobody reads."""

    def observe_claim(self, seconds: float) -> None:
        pass

    def observe_send(self, seconds: float) -> None:
        pass

    def count_outcome(self, outcome: Outcome) -> None:
        pass


SUPPRESSED_SINCE_IMPORT = "not sent: the address is on the suppression list"

RECORDING_PATIENCE_AFTER_STOP = 30.0
"""Seconds a stopping worker keeps trying to store the outcomes of messages that left while
the database is unreachable; after that those records end `uncertain` (never resent)."""


class _ServerUnavailable(Exception):
    """A mailbox's server did not answer (ServerUnavailableError) while sending a record:
    carries that record's outcome so the rest of the mailbox's pass can stop."""

    def __init__(self, result: SendResult, message: str) -> None:
        super().__init__(message)
        self.result = result


def new_worker_id() -> str:
    """Unique per process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"  # noqa: S311


class SendQueue(
    SendingRepository, CampaignRepository, MailboxRepository, SuppressionRepository, Protocol
):
    """What the worker needs: the queue, the campaigns and mailboxes it sends for, and the
    suppression list it checks last."""


class SendingWorker:
    """One worker loop. `tick()` does one pass; `run()` loops until told to stop."""

    def __init__(
        self,
        store: SendQueue,
        mailboxes: MailboxService,
        providers: ProviderFactory,
        *,
        settings: WorkerSettings | None = None,
        clock: Clock = utc_now,
        worker_id: str | None = None,
        tracking: TrackingLinks | None = None,
        metrics: WorkerMetrics | None = None,
        rng: random.Random | None = None,
        version: str = "unknown",
    ) -> None:
        self._rng = rng or random.Random()  # noqa: S311 - a human pace, not security
        self._tracking = tracking
        self._metrics = metrics or _Unmeasured()
        self._store = store
        self._mailboxes = mailboxes
        self._providers = providers
        self._settings = settings or WorkerSettings()
        self._clock = clock
        self.worker_id = worker_id or new_worker_id()
        self._version = version
        self._started_at: datetime | None = None
        self._last_pass_at: datetime | None = None
        self._beaten_at: float | None = None  # monotonic, of the last heartbeat written
        self._held = 0
        self._stopping = asyncio.Event()
        self._open: dict[str, tuple[Provider, object]] = {}
        self._database_lost_at: float | None = None
        # Mailbox tasks share their small transactions (see kit.coalesce).
        self._start = Coalescer(self._start_sending_together)
        self._record = Coalescer(self._record_together)

    async def _start_sending_together(self, requests: Sequence[dict[str, str]]) -> list[set[str]]:
        now = self._clock()
        merged = {record_id: mid for request in requests for record_id, mid in request.items()}
        allowed = await self._store.start_sending(
            Lease(self.worker_id, now, now + timedelta(seconds=self._settings.lease_seconds)),
            merged,
        )
        return [allowed & request.keys() for request in requests]

    async def _record_together(self, batches: Sequence[list[SendResult]]) -> list[None]:
        await self._store.record_results(
            [result for batch in batches for result in batch],
            now=self._clock(),
            worker_id=self.worker_id,
        )
        return [None] * len(batches)

    def stop(self) -> None:
        """Finish the sends in flight, release the rest, and leave `run()`."""
        self._stopping.set()

    async def run(self) -> None:
        """Send until `stop()`; survives database outages by waiting and trying again."""
        log.info("worker %s started", self.worker_id)
        self._started_at = self._clock()
        await self._beat(forget=True)
        try:
            while not self._stopping.is_set():
                try:
                    handled = await self.tick()
                except DatabaseUnavailableError as error:
                    self._database_lost(error)
                    handled = 0
                except Exception:
                    log.exception("worker %s: pass failed; retrying", self.worker_id)
                    handled = 0
                else:
                    self._database_back()
                    self._last_pass_at = self._clock()
                self._held = 0
                every = beat_interval(self._settings.lease_seconds)
                if self._beaten_at is None or time.monotonic() - self._beaten_at >= every:
                    await self._beat()
                if handled == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._stopping.wait(), timeout=self._settings.poll_seconds
                        )
        finally:
            try:
                await self._store.release_claims(worker_id=self.worker_id)
            except DatabaseUnavailableError as error:
                log.warning(
                    "worker %s: claims not given back (%s); they return when their lease runs out",
                    self.worker_id,
                    error.message,
                )
            await self.close()
            await self._beat(stopped=True)
            log.info("worker %s stopped", self.worker_id)

    async def _beat(self, *, stopped: bool = False, forget: bool = False) -> None:
        """Record that this worker is here (sending/heartbeats.py); an outage skips it (the
        worker carries on, and shows as gone only if it lasts three leases)."""
        now = self._clock()
        beat = WorkerHeartbeat(
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=self._version,
            lease_seconds=self._settings.lease_seconds,
            started_at=self._started_at or now,
            beat_at=now,
            last_pass_at=self._last_pass_at,
            held=self._held,
            stopped_at=now if stopped else None,
        )
        try:
            if forget:
                await self._store.forget_heartbeats(before=now - FORGET_AFTER)
            await self._store.record_heartbeat(beat)
        except DatabaseUnavailableError:
            return
        self._beaten_at = time.monotonic()

    def _database_lost(self, error: DatabaseUnavailableError) -> None:
        # One line when it goes and one when it is back, not a traceback every pass.
        if self._database_lost_at is None:
            self._database_lost_at = time.monotonic()
            log.warning("worker %s: %s; waiting for it", self.worker_id, error.message)

    def _database_back(self) -> None:
        if self._database_lost_at is not None:
            seconds = time.monotonic() - self._database_lost_at
            self._database_lost_at = None
            log.warning(
                "worker %s: the database answers again (after %.1fs)", self.worker_id, seconds
            )

    async def close(self) -> None:
        """Close every provider connection."""
        providers, self._open = self._open, {}
        for provider, _ in providers.values():
            await provider.close()

    async def tick(self) -> int:
        """One pass: lifecycle, then lease and send what is due. Returns how many records it
        tried to send (what a mailbox's pace held back, or was given back, is not counted:
        a loop of passes ends when nothing more can go now)."""
        started = time.perf_counter()
        now = self._clock()
        await self._store.run_lifecycle(now=now)
        if self._stopping.is_set():
            return 0
        claim_started = time.perf_counter()
        records = await self._store.claim_due(
            Lease(self.worker_id, now, now + timedelta(seconds=self._settings.lease_seconds)),
            limit=self._settings.batch_size,
        )
        self._metrics.observe_claim(time.perf_counter() - claim_started)
        if not records:
            return 0
        if self._started_at is not None:  # a running worker (not a test's single pass)
            self._held = len(records)
            await self._beat()
        by_mailbox: dict[str, list[EmailTracking]] = defaultdict(list)
        for record in records:
            by_mailbox[record.mailbox_id].append(record)
        outcomes: Counter[Outcome] = Counter()
        # Every mailbox's sends finish (and are recorded) before the pass ends, even when
        # one of them fails: none is left running behind the next pass or a stop.
        failures = await asyncio.gather(
            *(
                self._send_for_mailbox(mailbox_id, group, outcomes)
                for mailbox_id, group in by_mailbox.items()
            ),
            return_exceptions=True,
        )
        self._log_pass(len(records), outcomes, time.perf_counter() - started)
        for failure in failures:
            if isinstance(failure, BaseException):
                raise failure
        return sum(outcomes.values())

    def _log_pass(self, claimed: int, outcomes: Counter[Outcome], seconds: float) -> None:
        # One line per pass, not per email: at 200 records a pass, per-email INFO lines
        # would drown everything else. Records claimed but never attempted (campaign paused
        # meanwhile, worker stopping, mailbox unusable) were given back: `released`.
        counts = {outcome.value: outcomes[outcome] for outcome in Outcome}
        counts["released"] = claimed - sum(outcomes.values())
        log.info(
            "worker %s: claimed %d, %s in %.3fs",
            self.worker_id,
            claimed,
            ", ".join(f"{name} {count}" for name, count in counts.items()),
            seconds,
            extra={
                "worker_id": self.worker_id,
                "claimed": claimed,
                **counts,
                "duration_seconds": round(seconds, 6),
            },
        )

    async def _send_for_mailbox(
        self, mailbox_id: str, records: list[EmailTracking], outcomes: Counter[Outcome]
    ) -> None:
        mailbox = await self._store.get_mailbox_unscoped(mailbox_id)
        unsent = {record.id for record in records}
        try:
            if mailbox is None or not mailbox.can_send:
                return
            mailbox = await self._mailboxes.recheck_tracking_domain(mailbox)
            campaigns: dict[str, Campaign | None] = {}
            for campaign_id in {record.campaign_id for record in records}:
                campaigns[campaign_id] = await self._store.get_campaign_unscoped(campaign_id)
            pace = await self._pace(mailbox, records, campaigns)
            if pace.later:
                await self._store.put_back(worker_id=self.worker_id, due=pace.later)
                unsent -= pace.later.keys()
            records = pace.now
            if not records:
                return
            provider = await self._provider(mailbox)
            size = self._settings.in_flight_per_mailbox
            for start in range(0, len(records), size):
                if self._stopping.is_set():
                    return
                group = records[start : start + size]
                # What the group did not start (its campaign paused or cancelled since the
                # claim) stays in `unsent`: given back below, not held until the lease ends.
                unsent -= await self._send_group(mailbox, provider, group, campaigns, outcomes)
            await self._mailboxes.mark_used(mailbox.user_id, mailbox.id)
        except _ServerUnavailable as unavailable:
            # The rest of this pass's records are given back (finally, below).
            log.warning("mailbox %s: %s; tried again next pass", mailbox_id, unavailable)
        except MailboxUnusableError as error:
            assert mailbox is not None
            log.warning("mailbox %s cannot send: %s", mailbox.id, error.message)
            await self._forget(mailbox.id)
            await self._mailboxes.set_status(
                mailbox.user_id, mailbox.id, "error", reason=error.message
            )
        finally:
            if unsent:
                await self._store.release_claims(worker_id=self.worker_id, record_ids=unsent)

    async def _pace(
        self,
        mailbox: Mailbox,
        records: Sequence[EmailTracking],
        campaigns: dict[str, Campaign | None],
    ) -> pacing.Pace:
        """Which of the mailbox's claimed records go now, and until when the others wait:
        its daily limit, follow-ups first, one send per turn when there is a gap."""
        known = {cid: campaign for cid, campaign in campaigns.items() if campaign is not None}
        now = self._clock()
        ordered = pacing.sending_order(r for r in records if r.campaign_id in known)
        made = {
            day: await self._store.made_since(mailbox.id, day)
            for day in pacing.counted_days(ordered, known, now)
        }
        limit = await self._mailboxes.limit_today(mailbox)
        pace = pacing.within_daily_limit(ordered, known, daily_limit=limit, made=made, now=now)
        gap = self._settings.send_gap
        if gap.off or not pace.now:
            return pace
        until = now + gap.draw(self._rng)
        held = await self._store.take_turn(mailbox.id, now=now, until=until)
        return pacing.one_per_turn(
            pace, known, taken=held is None, next_turn=until if held is None else held, gap=gap
        )

    async def _send_group(
        self,
        mailbox: Mailbox,
        provider: Provider,
        group: Sequence[EmailTracking],
        campaigns: dict[str, Campaign | None],
        outcomes: Counter[Outcome],
    ) -> set[str]:
        """Send a group of records together; returns the ids it started (marked `sending`),
        whose outcome it recorded."""
        message_ids = {record.id: message_id_for(record.id, mailbox.email) for record in group}
        try:
            allowed = await self._start.submit(message_ids)
        except DatabaseUnavailableError:
            await self._unmark_durably(list(message_ids))
            raise
        results: list[SendResult] = []
        try:
            # Suppressed since the import (unsubscribed or bounced in another campaign, or
            # added by hand): checked here, at the last moment, so nobody gets mail after
            # opting out. (Inside the try: a database failure here puts the group back.)
            blocked = await self._store.suppressed_among(
                mailbox.user_id, [r.recipient_email for r in group if r.id in allowed]
            )
            for record in group:
                if record.id not in allowed:
                    continue
                if record.recipient_email in blocked:
                    results.append(
                        SendResult.of(record, Outcome.SUPPRESSED, SUPPRESSED_SINCE_IMPORT)
                    )
                    continue
                if record.campaign_id not in campaigns:
                    campaigns[record.campaign_id] = await self._store.get_campaign_unscoped(
                        record.campaign_id
                    )
                campaign = campaigns[record.campaign_id]
                assert campaign is not None
                record = record.model_copy(update={"message_id": message_ids[record.id]})
                thread = None
                if record.step != 1:
                    earlier = await self._store.sequence_emails(
                        record.campaign_id, record.recipient_email
                    )
                    thread = thread_for(campaign, record, earlier)
                results.append(await self._send_one(mailbox, provider, campaign, record, thread))
        except _ServerUnavailable as unavailable:
            # Its other records would each wait out the same timeout: they go back to the
            # queue untried, due after a pause; the failing one keeps its own back-off.
            results.append(unavailable.result)
            done = {result.record_id for result in results}
            retry_at = self._clock() + timedelta(seconds=self._settings.retry_base_seconds)
            results.extend(
                SendResult.of(
                    record,
                    Outcome.RETRY,
                    f"not tried: {unavailable}",
                    retry_at=retry_at,
                    attempts=record.attempts,
                )
                for record in group
                if record.id in allowed and record.id not in done
            )
            raise
        except (MailboxUnusableError, DatabaseUnavailableError) as error:
            # Nothing of the failing record left: put it and the rest of the group back —
            # after a pause when the mailbox cannot send, due at once when the database
            # failed (stored when it is back, below).
            done = {result.record_id for result in results}
            pause = self._settings.retry_base_seconds
            if isinstance(error, DatabaseUnavailableError):
                pause = 0
            retry_at = self._clock() + timedelta(seconds=pause)
            results.extend(
                SendResult.of(
                    record,
                    Outcome.RETRY,
                    error.message,
                    retry_at=retry_at,
                    attempts=record.attempts,
                )
                for record in group
                if record.id in allowed and record.id not in done
            )
            raise
        finally:
            for result in results:
                outcomes[result.outcome] += 1
                self._metrics.count_outcome(result.outcome)
                log.debug("record %s: %s", result.record_id, result.outcome.value)
            if results:
                await self._record_durably(results)
        return set(allowed)

    async def _record_durably(self, results: list[SendResult]) -> None:
        """SendQueue outcomes, waiting out a database outage: these messages left (or surely
        did not), and only their outcome says so. Meanwhile the records stay `sending`, so
        nobody sends them again; if their lease runs out first they turn `uncertain`, and
        the outcome stored later still wins (SendingRepository.record_results)."""
        await self._durably(
            lambda: self._record.submit(results),
            f"stopping without storing {len(results)} outcome(s); those records will end uncertain",
        )

    async def _unmark_durably(self, record_ids: list[str]) -> None:
        """Give back records whose `sending` mark failed, waiting out the outage: the mark
        may have been written with its answer lost (a failover, a write concern timeout),
        and none of them reached a provider, so they are due again, not `uncertain`."""
        await self._durably(
            lambda: self._store.release_marked(worker_id=self.worker_id, record_ids=record_ids),
            f"stopping without giving back {len(record_ids)} record(s) whose mark failed; "
            "those records will end uncertain",
        )

    async def _durably(self, write: Callable[[], Awaitable[object]], giving_up: str) -> None:
        """`write`, again and again while the database is unavailable (backing off up to
        5 s); after a stop, for RECORDING_PATIENCE_AFTER_STOP at most, then `giving_up` is
        logged and the outage raised."""
        pause = min(self._settings.poll_seconds, 1.0)
        give_up_at: float | None = None
        while True:
            try:
                await write()
            except DatabaseUnavailableError as error:
                self._database_lost(error)
                if self._stopping.is_set():
                    give_up_at = give_up_at or time.monotonic() + RECORDING_PATIENCE_AFTER_STOP
                    if time.monotonic() > give_up_at:
                        log.error("worker %s: %s", self.worker_id, giving_up)
                        raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            else:
                self._database_back()
                return

    async def _send_one(
        self,
        mailbox: Mailbox,
        provider: Provider,
        campaign: Campaign,
        record: EmailTracking,
        thread: Thread | None,
    ) -> SendResult:
        message = build_message(
            campaign=campaign,
            mailbox=mailbox,
            record=record,
            sent_at=self._clock(),
            tracking=self._tracking,
            thread=thread,
        )
        started = time.perf_counter()
        try:
            await provider.send(message, sender=mailbox.email, recipient=record.recipient_email)
        except PermanentSendError as error:
            return SendResult.of(record, Outcome.BOUNCED, error.message)
        except UncertainSendError as error:
            return SendResult.of(record, Outcome.UNCERTAIN, error.message)
        except TransientSendError as error:
            result = self._transient_result(record, error)
            if isinstance(error, ServerUnavailableError):
                raise _ServerUnavailable(result, error.message) from None
            return result
        finally:
            self._metrics.observe_send(time.perf_counter() - started)
        return SendResult.of(
            record,
            Outcome.SENT,
            message_id=await self._provider_message_id(provider, record),
            next_step=self._next_step(campaign, record, mailbox),
        )

    def _next_step(
        self, campaign: Campaign, record: EmailTracking, mailbox: Mailbox
    ) -> NextStep | None:
        """The person's next follow-up, due its delay after now (in the window)."""
        follow_up = campaign.step_after(record.step)
        if follow_up is None:
            return None
        due = after_delay(self._clock(), follow_up.delay, campaign.window_for(record.timezone))
        return NextStep(follow_up.step, due, mailbox.id)

    def _transient_result(self, record: EmailTracking, error: TransientSendError) -> SendResult:
        """A retry with back-off, or `failed` once the attempts are used up. A throttling is
        no attempt: the provider refused the mailbox's pace, not the message, and said when
        to come back (Gmail's daily limit can say so for days running)."""
        if isinstance(error, ThrottledError):
            # The provider said when: earlier is refused again, later wastes the slot.
            return SendResult.of(
                record,
                Outcome.RETRY,
                error.message,
                retry_at=self._clock() + timedelta(seconds=max(error.retry_after, 1.0)),
                attempts=record.attempts,
            )
        attempts = record.attempts + 1
        if attempts >= self._settings.max_attempts:
            return SendResult.of(
                record, Outcome.FAILED, f"{error.message} (gave up after {attempts} attempts)"
            )
        backoff = self._settings.retry_base_seconds * 2 ** (attempts - 1)
        backoff *= random.uniform(0.8, 1.2)  # noqa: S311 - spread retries, not security
        return SendResult.of(
            record,
            Outcome.RETRY,
            error.message,
            retry_at=self._clock() + timedelta(seconds=backoff),
        )

    async def _provider_message_id(self, provider: Provider, record: EmailTracking) -> str | None:
        """The Message-ID the provider sent under when it is not ours (Gmail may replace
        it), else None. The message is sent: a failed read-back keeps ours, never retries."""
        if not isinstance(provider, ReportsSentMessageId) or provider.last_message_id is None:
            return None
        try:
            used = await provider.sent_message_id(provider.last_message_id)
        except ProviderError as error:
            log.warning("record %s: Message-ID not read back: %s", record.id, error.message)
            return None
        return used if used and used != record.message_id else None

    async def _provider(self, mailbox: Mailbox) -> Provider:
        # A provider is rebuilt when the mailbox changed (new password, host…).
        cached = self._open.get(mailbox.id)
        if cached is not None and cached[1] == mailbox.updated_at:
            return cached[0]
        await self._forget(mailbox.id)
        credentials = await self._mailboxes.credentials(mailbox.user_id, mailbox.id)
        provider = self._providers(mailbox, credentials)
        self._open[mailbox.id] = (provider, mailbox.updated_at)
        return provider

    async def _forget(self, mailbox_id: str) -> None:
        cached = self._open.pop(mailbox_id, None)
        if cached is not None:
            await cached[0].close()
