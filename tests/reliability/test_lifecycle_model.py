"""Reliability item 5: a model of campaigns' lives, checked step by step (docs/reliability.md).

Hypothesis drives the real services — CampaignService, SendingService, TrackingService and
SendingWorker — on a fresh database per example, sending through a real SMTP server on
loopback, with a clock that moves only when a step says so. The steps: create a campaign,
import recipients (duplicates, other spellings, invalid rows, suppressed addresses), launch,
pause, resume, cancel, suppress an address, unsubscribe a recipient, a worker pass, a worker
that dies mid-pass (SIGKILL-like: see tests/support/worker_faults.py), a pass interrupted by
a pause, cancel, suppression or a stall longer than the lease, and time passing.

After every step the model checks what a user would see:
- nobody outside a campaign's audience gets its mail (imported, valid, not suppressed or
  unsubscribed when the message left), and nothing is sent outside the campaign's window;
- nobody gets a campaign's message twice (counted at the SMTP server), and a record whose
  worker died in `sending` is never sent again;
- after pause() or cancel() returned, the campaign sends nothing but the messages already
  in flight at that moment;
- every record's state is explained (sent ⇔ exactly one copy at the server, `failed` only
  for the address that always answers 451, `uncertain` only for the records a worker held
  in `sending` when it died or stalled past its lease, `expired` only after the window…);
- `completed` only when every record is final; `cancelled` leaves nothing pending;
- the metrics equal a recount from the records, and the suppression list is exactly the
  manual entries, unsubscribes and bounces.
At the end of each example, time runs past every window and leases: every campaign must be
completed or cancelled and every record final.

It runs on SQLite, PostgreSQL and the MongoDB adapter (on the in-process double of its API).
CI runs a fixed set of examples per backend (a fixed seed: the same ones every run). A
longer, random search (`test_lifecycle_model[sqlite]` for one backend):
    MAILRAMP_LIFECYCLE_EXAMPLES=1000 MAILRAMP_LIFECYCLE_SEED=random \\
        .venv/bin/pytest -s tests/reliability/test_lifecycle_model.py::test_lifecycle_model
`MAILRAMP_LIFECYCLE_SEED=<n>` searches with another fixed seed; `MAILRAMP_LIFECYCLE_STEPS`
sets the steps per example (30). `-s` prints what the examples did.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import os
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mailramp.campaigns import service as campaign_service_module
from mailramp.campaigns.models import FINAL_STATUSES, TRANSITIONS, Campaign, CampaignStatus
from mailramp.errors import ConflictError, InvalidTransitionError, PlanError
from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.kit.signing import Purpose, TokenSigner
from mailramp.mailboxes.models import NO_GAP
from mailramp.mailboxes.transport import ProviderFactory
from mailramp.metrics.models import derived_fields
from mailramp.providers.registry import DefaultProviders
from mailramp.runtime import build_services
from mailramp.sending.message import message_id_for
from mailramp.sending.models import EXPIRY_GRACE
from mailramp.sending.worker import SendingWorker, WorkerSettings
from mailramp.storage.sql import SqlStore
from mailramp.suppression.models import Suppression, SuppressionReason
from mailramp.tracking.events import COUNTED_BY
from mailramp.tracking.models import (
    FINAL_TRACKING_STATUSES,
    EmailTracking,
    TrackingStatus,
)
from mailramp.tracking.repository import RecipientQuery
from mailramp.tracking.service import Visitor
from tests.conftest import PostgresTarget, new_postgres_database
from tests.support.clock import MONDAY_MORNING, FakeClock
from tests.support.loops import run_blocking
from tests.support.smtp import SmtpServer
from tests.support.worker_faults import FaultyStore, SendHooks, WorkerKilled, hooked

pytestmark = pytest.mark.reliability

ResultT = TypeVar("ResultT")

# -- how much to search -------------------------------------------------------------------

EXAMPLES = int(os.environ.get("MAILRAMP_LIFECYCLE_EXAMPLES", "0")) or None
STEPS = int(os.environ.get("MAILRAMP_LIFECYCLE_STEPS", "30"))
SEED = os.environ.get("MAILRAMP_LIFECYCLE_SEED", "20270301")
"""CI's fixed seed: the same examples every run (`random` for a fresh search each time).
A seed, not `derandomize=True`: hypothesis's derandomized stream repeats one rule for most
of an example, which here sent about one message per example instead of three."""
EXAMPLES_BY_BACKEND = {"sqlite": 25, "postgresql": 12, "mongodb": 60}
"""Examples CI runs per backend: about 25 s for SQLite, 20 s for PostgreSQL and 11 s for
the MongoDB double on two shared cores (MAILRAMP_LIFECYCLE_EXAMPLES for a longer search)."""

# -- the world ----------------------------------------------------------------------------

START = MONDAY_MORNING
SENDER = "ann@acme.com"
SMTP_PASSWORD = "smtp-password"
LEASE_SECONDS = 120
WORKER = WorkerSettings(
    lease_seconds=LEASE_SECONDS,
    batch_size=4,  # several claims per pass
    in_flight_per_mailbox=2,  # several groups per claim
    max_attempts=3,
    retry_base_seconds=60,
    send_gap=NO_GAP,
)
MAX_TICKS = 40
"""A pass whose worker still finds work after this many ticks is stuck (a liveness bug)."""

BOUNCING = "bounce@example.com"  # the server answers 550: bounced, then suppressed
BUSY = "busy@example.com"  # the server answers 451 every time: failed after the last attempt
GREYLISTED = "grey@example.com"  # the server answers 451 once, then accepts
PEOPLE = tuple(f"{name}@example.com" for name in ("ada", "bob", "cy", "dee", "eve", "fay"))
ADDRESSES = (*PEOPLE, BOUNCING, BUSY, GREYLISTED)
CELLS: dict[str, str | None] = {
    **{address: address for address in ADDRESSES},
    " Ada@Example.COM ": "ada@example.com",  # another spelling: the same recipient
    "BOB@EXAMPLE.COM": "bob@example.com",
    "not-an-address": None,
    "cy@": None,
    "@example.com": None,
    "": None,
}
"""An email cell of the CSV, and the recipient it is (None: an invalid row)."""

FIGURES: Counter[str] = Counter()
"""What the examples of the current test did (printed at its end, for docs/reliability.md)."""

UNSUBSCRIBER = Visitor(user_agent="Mozilla/5.0", ip="198.51.100.7", method="POST")


@dataclass
class Harness:
    """What the examples of one test share: where fresh databases come from, the SMTP
    server, and the campaign ids (see `next_campaign_id`)."""

    backend: str
    smtp: SmtpServer
    new_database: Callable[[], str]
    discard_database: Callable[[str], None]
    _campaign_numbers: Iterator[int] = field(default_factory=itertools.count)

    def reset(self) -> None:
        self._campaign_numbers = itertools.count(1)
        inbox = self.smtp.inbox
        with inbox.lock:
            inbox.messages.clear()
            inbox.rcpt_replies.clear()
            inbox.rcpt_replies[BOUNCING] = ["550 5.1.1 No such user here!"]
            inbox.rcpt_replies[BUSY] = ["451 4.3.0 Mailbox busy, try again later!"]
            inbox.rcpt_replies[GREYLISTED] = ["451 4.7.1 Greylisted, try again later"]

    def next_campaign_id(self) -> str:
        """Campaign ids seed the planner's jitter, so they must repeat from run to run for
        an example (and a failure) to replay exactly: numbered per example, still UUID4."""
        return str(uuid.UUID(int=next(self._campaign_numbers), version=4))


@dataclass
class CampaignModel:
    """What the model knows of one campaign."""

    label: str
    campaign_id: str
    audience: set[str] = field(default_factory=set)
    """Every recipient accepted by an import: records exist for exactly these."""
    paused: bool = False
    cancelled: bool = False
    final: CampaignStatus | None = None


@dataclass(frozen=True)
class Epoch:
    """What may be sent from the `start`-th message at the server on (until the next
    epoch): the model's state when it last changed."""

    start: int
    halted: frozenset[str]
    """Campaigns paused or cancelled: nothing of theirs may leave…"""
    suppressed: frozenset[str]
    """…nor anything to these addresses…"""
    in_flight: frozenset[str]
    """…except these records, already `sending` at that moment (sends in flight finish)."""


async def _open_store(url: str) -> Any:
    if not url.startswith("mongodb://double/"):
        return SqlStore.from_url(url)
    from mailramp.storage.mongo import MongoStore
    from tests.support.mongo_double import mock_database

    store = MongoStore(mock_database(url.rsplit("/", 1)[1]))
    await store.migrate()
    return store


def record_id_of(message: Message) -> str:
    """The tracking record a message was sent for, from its Message-ID."""
    return str(message["Message-ID"]).strip("<>").split(".", 1)[0]


def _csv(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "first_name"])
    writer.writerows([cell, f"Name {number}"] for number, cell in enumerate(cells))
    return buffer.getvalue().encode()


DURATIONS = st.sampled_from((0.5, 1, 2))
STARTS_IN = st.sampled_from((0, 10, 45))
MINUTES = st.sampled_from((5, 1, 15, 45))
"""Steps of time. Hypothesis favours the first entries: each of these lists starts with
what makes most happen (a half-hour window starting now, a few sends due every 5 minutes);
45 minutes jumps past a short window and its grace period."""
CELLS_STRATEGY = st.lists(
    st.one_of(st.sampled_from(ADDRESSES), st.sampled_from(list(CELLS))), min_size=2, max_size=8
)
"""A CSV's email column: mostly plain addresses, also other spellings and invalid rows."""

KILL_POINTS = st.sampled_from(
    [(point, n) for n in range(2) for point in ("before send", "after send")] + [("after claim", 0)]
)
"""Where a worker dies: its claim committed but not seen; before the n-th message leaves;
or just after the server accepted it, before the outcome is written."""

INTERRUPT_POINTS = st.sampled_from([("before send", n) for n in range(2)] + [("after claim", 0)])
"""Where another actor steps in during a pass: between a claim and marking records
`sending`, or before the n-th message leaves."""


class LifecycleModel(RuleBasedStateMachine):
    """One user, one SMTP mailbox, up to three campaigns."""

    harness: ClassVar[Harness]
    campaigns = Bundle("campaigns")

    def __init__(self) -> None:
        super().__init__()
        self.harness.reset()
        FIGURES["examples"] += 1
        self.clean = True  # False from a step's start until the invariants after it passed
        self.loop = asyncio.new_event_loop()
        self.url = self.harness.new_database()
        self.store = self.loop.run_until_complete(_open_store(self.url))
        self.clock = FakeClock(START)
        self.secret_box = SecretBox([generate_key()])
        self.signer = TokenSigner([b"lifecycle-model-tracking-key-000"])
        self.services = build_services(self.store, self.secret_box, self.signer, clock=self.clock)
        self.campaign_service = self.services.campaigns
        self.sending = self.services.sending
        self.metrics = self.services.metrics
        self.tracking = self.services.tracking
        self.models: dict[str, CampaignModel] = {}
        self.by_id: dict[str, CampaignModel] = {}
        self.suppressed: set[str] = set()  # by hand or unsubscribed (bounces come on top)
        self.epochs: list[Epoch] = []
        self.checked = 0  # messages at the server already checked
        # A record `sending` when its worker died -> how many messages the server had then.
        self.dead: dict[str, int] = {}
        self.dead_workers: set[str] = set()
        self.stalled: set[str] = set()  # records in flight when their worker stalled
        self.worker_numbers = itertools.count(1)
        self.user_id, self.mailbox_id = self._run(self._sign_up())
        self._run(self._new_epoch())

    # -- plumbing -----------------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
        self.clean = False
        return self.loop.run_until_complete(coroutine)

    def records(self, label: str) -> list[EmailTracking]:
        """A campaign's records, as stored now."""
        return self._run(self._records(self.models[label]))

    def campaign(self, label: str) -> Campaign:
        """A campaign, as stored now."""
        return self._run(self._campaign(self.models[label]))

    async def _sign_up(self) -> tuple[str, str]:
        user = await self.services.accounts.create_user(user_name="Ann", login_id="ann")
        mailbox = await self.services.mailboxes.create_mailbox(
            user.user_id,
            email=SENDER,
            provider="smtp",
            smtp_host="127.0.0.1",
            smtp_port=self.harness.smtp.port,
            smtp_security="plain",
            password=SMTP_PASSWORD,
            daily_limit=500,
        )
        return user.user_id, mailbox.mailbox_id

    def _worker(self, store: Any = None, hooks: SendHooks | None = None) -> SendingWorker:
        store = self.store if store is None else store
        providers: ProviderFactory = DefaultProviders(allow_private_hosts=True)
        if hooks is not None:
            providers = hooked(providers, hooks)
        return SendingWorker(
            store,
            build_services(store, self.secret_box, self.signer, clock=self.clock).mailboxes,
            providers,
            settings=WORKER,
            clock=self.clock,
            worker_id=f"worker-{next(self.worker_numbers)}",
        )

    async def _work(self, worker: SendingWorker) -> None:
        """Ticks until the worker finds nothing to do (as a polling worker would)."""
        try:
            for _ in range(MAX_TICKS):
                if not await worker.tick():
                    return
            raise AssertionError(f"the worker still found work after {MAX_TICKS} passes")
        finally:
            await worker.close()

    def _messages(self) -> list[Any]:
        inbox = self.harness.smtp.inbox
        with inbox.lock:
            return list(inbox.messages)

    async def _campaign(self, model: CampaignModel) -> Campaign:
        return await self.campaign_service.get_campaign(self.user_id, model.campaign_id)

    async def _records(self, model: CampaignModel) -> list[EmailTracking]:
        page = await self.store.list_tracking(
            self.user_id, RecipientQuery(model.campaign_id, limit=1000)
        )
        return page.items

    async def _all_records(self) -> list[EmailTracking]:
        return [record for model in self.models.values() for record in await self._records(model)]

    async def _new_epoch(self) -> None:
        """The model's state changed: what may be sent from the next message on."""
        in_flight = frozenset(
            record.id
            for record in await self._all_records()
            if record.status is TrackingStatus.SENDING
        )
        self.epochs.append(
            Epoch(
                start=len(self._messages()),
                halted=frozenset(
                    m.campaign_id for m in self.models.values() if m.paused or m.cancelled
                ),
                suppressed=frozenset(self.suppressed),
                in_flight=in_flight,
            )
        )

    def _epoch_at(self, index: int) -> Epoch:
        return next(epoch for epoch in reversed(self.epochs) if epoch.start <= index)

    # -- the user's actions, with what each must do ----------------------------------------

    async def _launch(self, model: CampaignModel) -> None:
        campaign = await self._campaign(model)
        now = self.clock()
        if campaign.status is CampaignStatus.PAUSED:
            expected = CampaignStatus.ACTIVE  # "launch" starts now, paused before or not
        elif campaign.status is CampaignStatus.SCHEDULED:
            expected = CampaignStatus.ACTIVE
        else:
            FIGURES["illegal transitions refused"] += 1
            with pytest.raises(InvalidTransitionError):
                await self.campaign_service.launch(self.user_id, model.campaign_id)
            return
        launched = await self.campaign_service.launch(self.user_id, model.campaign_id)
        assert launched.status is expected
        assert expected is not CampaignStatus.ACTIVE or launched.start_time <= now
        model.paused = False
        await self._new_epoch()

    async def _resume(self, model: CampaignModel) -> None:
        campaign = await self._campaign(model)
        now = self.clock()
        target = CampaignStatus.ACTIVE if now >= campaign.start_time else CampaignStatus.SCHEDULED
        if target not in TRANSITIONS[campaign.status]:
            FIGURES["illegal transitions refused"] += 1
            with pytest.raises(InvalidTransitionError):
                await self.campaign_service.resume(self.user_id, model.campaign_id)
            return
        resumed = await self.campaign_service.resume(self.user_id, model.campaign_id)
        assert resumed.status is target
        model.paused = False
        await self._new_epoch()

    async def _pause(self, model: CampaignModel) -> None:
        campaign = await self._campaign(model)
        if CampaignStatus.PAUSED not in TRANSITIONS[campaign.status]:
            FIGURES["illegal transitions refused"] += 1
            with pytest.raises(InvalidTransitionError):
                await self.campaign_service.pause(self.user_id, model.campaign_id)
            return
        paused = await self.campaign_service.pause(self.user_id, model.campaign_id)
        assert paused.status is CampaignStatus.PAUSED
        model.paused = True
        await self._new_epoch()

    async def _cancel(self, model: CampaignModel) -> None:
        campaign = await self._campaign(model)
        again = campaign.status is CampaignStatus.CANCELLED  # allowed: it finishes a cancel
        if not again and CampaignStatus.CANCELLED not in TRANSITIONS[campaign.status]:
            FIGURES["illegal transitions refused"] += 1
            with pytest.raises(InvalidTransitionError):
                await self.campaign_service.cancel(self.user_id, model.campaign_id)
            return
        cancelled = await self.campaign_service.cancel(self.user_id, model.campaign_id)
        assert cancelled.status is CampaignStatus.CANCELLED
        model.cancelled = True
        await self._new_epoch()
        left = [
            r.recipient_email
            for r in await self._records(model)
            if r.status is TrackingStatus.PENDING
        ]
        assert left == [], f"{model.label} was cancelled but {left} are still queued"

    async def _suppress(self, address: str) -> None:
        await self.store.add_suppression(
            Suppression(
                id=new_object_id(),
                user_id=self.user_id,
                email=address,
                reason=SuppressionReason.MANUAL,
                created_at=self.clock(),
            )
        )
        self.suppressed.add(address)
        await self._new_epoch()

    async def _stall(self) -> None:
        """The worker hangs past its lease; meanwhile another worker does a pass."""
        self.clock.advance(seconds=LEASE_SECONDS + 60)
        await self._new_epoch()
        self.stalled |= self.epochs[-1].in_flight
        await self._work(self._worker())

    def _could_send(self) -> bool:
        """Whether some campaign may still have mail to send (a fault mid-pass needs one)."""
        return any(
            model.audience and not (model.paused or model.cancelled or model.final)
            for model in self.models.values()
        )

    def _blocked(self, records: list[EmailTracking]) -> set[str]:
        bounced = {r.recipient_email for r in records if r.status is TrackingStatus.BOUNCED}
        return self.suppressed | bounced

    # -- rules ------------------------------------------------------------------------------

    @initialize(
        target=campaigns,
        suppressed=st.sets(st.sampled_from(ADDRESSES), max_size=2),
        duration=DURATIONS,
        starts_in=STARTS_IN,
        cells=CELLS_STRATEGY,
    )
    def first_campaign(
        self, suppressed: set[str], duration: int, starts_in: int, cells: list[str]
    ) -> str:
        """Every example starts with some suppressed addresses and a campaign with
        recipients; the rules add more of either."""
        for address in sorted(suppressed):
            self._run(self._suppress(address))
        label = self.create_campaign(duration, starts_in)
        self.import_recipients(label, cells)
        return label

    @precondition(lambda self: len(self.models) < 3)
    @rule(target=campaigns, duration=DURATIONS, starts_in=STARTS_IN)
    def create_campaign(self, duration: int, starts_in: int) -> str:
        label = f"c{len(self.models) + 1}"
        campaign = self._run(
            self.campaign_service.create_campaign(
                self.user_id,
                mailbox_id=self.mailbox_id,
                campaign_name=f"Campaign {label}",
                subject="Hello",
                message="Hi {{first_name|there}}, a note from Acme.",
                duration=duration,
                start_time=self.clock() + timedelta(minutes=starts_in),
            )
        )
        assert campaign.status is CampaignStatus.SCHEDULED
        model = CampaignModel(label=label, campaign_id=campaign.campaign_id)
        self.models[label] = model
        self.by_id[campaign.campaign_id] = model
        return label

    @rule(campaign=campaigns, cells=CELLS_STRATEGY)
    def import_recipients(self, campaign: str, cells: list[str]) -> None:
        self._run(self._import(self.models[campaign], cells))

    async def _import(self, model: CampaignModel, cells: list[str]) -> None:
        campaign = await self._campaign(model)
        before = await self._records(model)
        blocked = self._blocked(await self._all_records())
        audience = set(model.audience)
        seen: set[str] = set()
        accepted = duplicates = suppressed = invalid = 0
        for cell in cells:
            email = CELLS[cell]
            if email is None:
                invalid += 1
            elif email in seen:
                duplicates += 1
            else:
                seen.add(email)
                if email in blocked:
                    suppressed += 1
                elif email in audience:
                    duplicates += 1
                else:
                    accepted += 1
                    audience.add(email)
        pending = sum(r.status is TrackingStatus.PENDING for r in before) + accepted
        refusal: type[Exception] | None = None
        if campaign.status in FINAL_STATUSES:
            refusal = ConflictError
        elif self.clock() >= campaign.end_time and pending:
            refusal = PlanError  # nothing of the window is left to plan the pending into
        call = self.sending.import_recipients(
            self.user_id, model.campaign_id, io.BytesIO(_csv(cells))
        )
        if refusal is not None:
            FIGURES[f"imports refused ({refusal.__name__})"] += 1
            with pytest.raises(refusal):
                await call
            after = await self._records(model)
            assert after == before, "a refused import changed the campaign's recipients"
            assert (await self._campaign(model)).total_recipients == campaign.total_recipients
            return
        report = await call
        assert (report.rows, report.invalid_count) == (len(cells), invalid)
        assert (report.accepted, report.duplicates, report.suppressed) == (
            accepted,
            duplicates,
            suppressed,
        )
        assert report.total_recipients == len(audience)
        FIGURES["imports"] += 1
        FIGURES["rows imported: invalid"] += invalid
        FIGURES["rows imported: duplicate"] += duplicates
        FIGURES["rows imported: suppressed"] += suppressed
        model.audience = audience

    @rule(campaign=campaigns, action=st.sampled_from(("pause", "resume", "cancel", "launch")))
    def change_status(self, campaign: str, action: str) -> None:
        """Launch, pause, resume or cancel — legal or not from where the campaign is."""
        model = self.models[campaign]
        actions = {
            "launch": self._launch,
            "pause": self._pause,
            "resume": self._resume,
            "cancel": self._cancel,
        }
        self._run(actions[action](model))

    @rule(how=st.sampled_from(("unsubscribe", "by hand")), pick=st.integers(0, 20))
    def opt_out(self, how: str, pick: int) -> None:
        """A recipient who got mail unsubscribes (RFC 8058 POST), or the user suppresses an
        address by hand."""
        if how == "by hand":
            self._run(self._suppress(ADDRESSES[pick % len(ADDRESSES)]))
        else:
            self._run(self._unsubscribe(pick))

    async def _unsubscribe(self, pick: int) -> None:
        sent = [r for r in await self._all_records() if r.status is TrackingStatus.SENT]
        if not sent:
            return
        record = sent[pick % len(sent)]
        token = self.signer.sign(Purpose.UNSUBSCRIBE, record.id)
        target = await self.tracking.unsubscribe(token, UNSUBSCRIBER)
        assert target is not None and target.record.id == record.id
        self.suppressed.add(record.recipient_email)
        await self._new_epoch()
        FIGURES["unsubscribes"] += 1

    @rule(minutes=MINUTES, worker_running=st.sampled_from((True, False)))
    def time_passes(self, minutes: int, worker_running: bool) -> None:
        """Time passes; a worker (if one is running) sends what fell due."""
        self.clock.advance(minutes=minutes)
        if worker_running:
            self._run(self._work(self._worker()))

    @precondition(lambda self: self._could_send())
    @rule(minutes=MINUTES, at=KILL_POINTS)
    def worker_crash(self, minutes: int, at: tuple[str, int]) -> None:
        """Time passes, and the worker that wakes up dies mid-pass."""
        self.clock.advance(minutes=minutes)
        self._run(self._crash(*at))

    async def _crash(self, point: str, number: int) -> None:
        store = FaultyStore(self.store)
        hooks = SendHooks()

        async def die(_: object) -> None:
            store.kill()

        if point == "after claim":
            store.after["claim_due"] = die
        elif point == "before send":
            hooks.before[number] = die
        else:
            hooks.after[number] = die
        worker = self._worker(store, hooks)
        try:
            await self._work(worker)
        except WorkerKilled:
            pass
        else:
            return  # the pass ran out of work before the point of death
        self.dead_workers.add(worker.worker_id)
        FIGURES[f"workers killed {point}"] += 1
        messages = len(self._messages())
        in_flight = [
            record.id
            for record in await self._all_records()
            if record.status is TrackingStatus.SENDING and record.lease_owner == worker.worker_id
        ]
        # What a death leaves `uncertain` is at most what was in flight for its mailbox.
        assert len(in_flight) <= WORKER.in_flight_per_mailbox, in_flight
        self.dead |= dict.fromkeys(in_flight, messages)
        FIGURES["records in flight when their worker died"] += len(in_flight)

    @precondition(lambda self: self._could_send())
    @rule(
        minutes=MINUTES,
        action=st.sampled_from(("pause", "suppress", "stall", "cancel")),
        at=INTERRUPT_POINTS,
    )
    def interrupted_pass(self, minutes: int, action: str, at: tuple[str, int]) -> None:
        """Time passes, and while the worker that wakes up is mid-pass the user pauses or
        cancels the campaign it is sending, or suppresses the address, or the worker
        stalls past its lease while another one does a pass."""
        self.clock.advance(minutes=minutes)
        self._run(self._interrupted(action, *at))

    async def _interrupted(self, action: str, point: str, number: int) -> None:
        store = FaultyStore(self.store)
        hooks = SendHooks()

        async def interrupt(record_id: str) -> None:
            record = await self.store.get_tracking_unscoped(record_id)
            assert record is not None
            model = self.by_id[record.campaign_id]
            FIGURES[f"passes interrupted by {action} {point}"] += 1
            if action == "pause":
                await self._pause(model)
            elif action == "cancel":
                await self._cancel(model)
            elif action == "suppress":
                await self._suppress(record.recipient_email)
            else:
                await self._stall()

        async def after_claim(claimed: list[EmailTracking]) -> None:
            if claimed:
                await interrupt(claimed[0].id)

        async def before_send(message: Message) -> None:
            await interrupt(record_id_of(message))

        if point == "after claim":
            store.after["claim_due"] = after_claim
        else:
            hooks.before[number] = before_send
        await self._work(self._worker(store, hooks))

    # -- what must hold after every step ----------------------------------------------------

    @invariant()
    def everything_holds(self) -> None:
        self.loop.run_until_complete(self._check())
        self.clean = True
        FIGURES["steps checked"] += 1

    async def _check(self) -> None:
        records = await self._all_records()
        campaigns = {m.campaign_id: await self._campaign(m) for m in self.models.values()}
        by_message_id = {message_id_for(r.id, SENDER): r for r in records}
        messages = self._messages()
        now = self.clock()

        # Each new message at the server: whose, to whom, and whether it was allowed then.
        for index in range(self.checked, len(messages)):
            received = messages[index]
            message_id = str(received.message["Message-ID"])
            found = by_message_id.get(message_id)
            assert found is not None, f"{message_id} to {received.recipients} is no record's"
            assert received.recipients == [found.recipient_email]
            model = self.by_id[found.campaign_id]
            who = f"{model.label} → {found.recipient_email}"
            assert found.recipient_email in model.audience, f"{who}: not in the audience"
            epoch = self._epoch_at(index)
            if found.id not in epoch.in_flight:
                assert found.campaign_id not in epoch.halted, f"{who}: sent after pause/cancel"
                assert found.recipient_email not in epoch.suppressed, f"{who}: suppressed"
                campaign = campaigns[found.campaign_id]
                sent_at = parsedate_to_datetime(str(received.message["Date"]))
                assert campaign.start_time <= sent_at, f"{who}: sent before the start"
                assert sent_at < campaign.end_time + EXPIRY_GRACE, f"{who}: sent after the end"
            died = self.dead.get(found.id)
            assert died is None or index < died, f"{who}: sent again after its worker died"
        self.checked = len(messages)

        # Each record: its state explained, and as many copies at the server as it says.
        copies = Counter(str(received.message["Message-ID"]) for received in messages)
        listed = {
            s.email for s in (await self.store.list_suppressions(self.user_id, limit=1000)).items
        }
        for record in records:
            model = self.by_id[record.campaign_id]
            campaign = campaigns[record.campaign_id]
            who = f"{model.label} → {record.recipient_email} ({record.status})"
            count = copies[message_id_for(record.id, SENDER)]
            status = record.status
            if status is TrackingStatus.SENT:
                assert count == 1, f"{who}: {count} copies at the server"
                assert record.recipient_email not in (BOUNCING, BUSY), who
            elif status in (TrackingStatus.SENDING, TrackingStatus.UNCERTAIN):
                assert count <= 1, f"{who}: {count} copies at the server"
                # A stalled worker's retry leaves it as its expired lease made it.
                stuck = self.dead.keys() | self.stalled
                assert record.id in stuck, f"{who}: no worker died or stalled holding it"
            else:
                assert count == 0, f"{who}: {count} copies at the server"
            if status is TrackingStatus.SENDING:
                assert record.lease_owner in self.dead_workers, who
            elif status is TrackingStatus.FAILED:
                assert record.recipient_email == BUSY, who
            elif status is TrackingStatus.BOUNCED:
                assert record.recipient_email == BOUNCING, who
            elif status is TrackingStatus.SUPPRESSED:
                assert record.recipient_email in listed, who
            elif status is TrackingStatus.CANCELLED:
                assert model.cancelled, who
            elif status is TrackingStatus.EXPIRED:
                assert now >= campaign.end_time + EXPIRY_GRACE, f"{who}: expired early"

        # Each campaign: recipients, status, metrics.
        for model in self.models.values():
            campaign = campaigns[model.campaign_id]
            own = [r for r in records if r.campaign_id == model.campaign_id]
            emails = [r.recipient_email for r in own]
            assert sorted(emails) == sorted(model.audience), model.label
            assert campaign.total_recipients == len(own), model.label
            status = campaign.status
            if model.final is not None:
                assert status is model.final, f"{model.label}: {model.final} became {status}"
            if status is CampaignStatus.COMPLETED:
                open_ = [
                    f"{r.recipient_email} {r.status}"
                    for r in own
                    if r.status not in FINAL_TRACKING_STATUSES
                ]
                assert open_ == [], f"{model.label} is completed but {open_} are not final"
                assert own or now >= campaign.end_time, f"{model.label} completed early"
            if model.cancelled:
                assert status is CampaignStatus.CANCELLED, f"{model.label} is {status}"
                queued = [r.recipient_email for r in own if r.status is TrackingStatus.PENDING]
                assert queued == [], f"{model.label} is cancelled but {queued} are queued"
            elif model.paused:
                assert status is CampaignStatus.PAUSED, f"{model.label} is {status}, not paused"
            else:
                assert status not in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED), model.label
            if status in FINAL_STATUSES:
                model.final = status
            metrics = await self.metrics.get_campaign_metrics(
                model.campaign_id, user_id=self.user_id
            )
            counters = {
                counter: sum(getattr(r, field) is not None for r in own)
                for counter, field in COUNTED_BY.items()
            }
            expected = counters | derived_fields(counters)
            shown = {name: getattr(metrics, name) for name in expected}
            assert shown == expected, f"{model.label}: metrics {shown} but records say {expected}"

        assert listed == self._blocked(records), "the suppression list is not what happened"

    # -- the end of an example: let every window and lease run out -------------------------

    def teardown(self) -> None:
        try:
            if self.clean and self.models:
                self.loop.run_until_complete(self._finish())
        finally:
            self._close()

    async def _finish(self) -> None:
        for model in self.models.values():
            if (await self._campaign(model)).status is CampaignStatus.PAUSED:
                await self._resume(model)
        ends = sorted({(await self._campaign(model)).end_time for model in self.models.values()})
        for end in ends:  # send what each window still holds before it closes
            if self.clock() < end - timedelta(seconds=1):
                self.clock.now = end - timedelta(seconds=1)
                await self._work(self._worker())
        last = ends[-1]
        self.clock.now = max(self.clock(), last + EXPIRY_GRACE) + timedelta(
            seconds=LEASE_SECONDS + 60
        )
        await self._work(self._worker())
        await self._check()
        for model in self.models.values():
            campaign = await self._campaign(model)
            assert campaign.status in FINAL_STATUSES, f"{model.label} is still {campaign.status}"
            counts = await self.sending.status_counts(self.user_id, model.campaign_id)
            assert sum(counts.values()) == campaign.total_recipients
            unfinished = {
                s: n
                for s, n in counts.items()
                if n and TrackingStatus(s) not in FINAL_TRACKING_STATUSES
            }
            assert unfinished == {}, f"{model.label}: {unfinished} left unfinished"
            FIGURES[f"campaigns ended {campaign.status}"] += 1
            for name, number in counts.items():
                FIGURES[f"records ended {name}"] += number
        FIGURES["messages delivered"] += len(self._messages())

    def _close(self) -> None:
        loop = self.loop
        try:
            loop.run_until_complete(self.store.close())
            leftover = asyncio.all_tasks(loop)
            for task in leftover:
                task.cancel()
            if leftover:
                loop.run_until_complete(asyncio.wait(leftover))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self.harness.discard_database(self.url)


# -- the tests ------------------------------------------------------------------------------


def _settings(examples: int) -> settings:
    seeded = SEED != "random"
    return settings(
        max_examples=EXAMPLES or examples,
        stateful_step_count=STEPS,
        deadline=None,
        # A seeded run replays nothing from (and saves nothing to) the example database.
        database=None if seeded else settings.default.database,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
    )


def _machine(harness: Harness) -> type[LifecycleModel]:
    name = f"LifecycleModel_{harness.backend}"
    return type(name, (LifecycleModel,), {"harness": harness})


@pytest.fixture
def smtp_sink() -> Iterator[SmtpServer]:
    server = SmtpServer(accounts={SENDER: SMTP_PASSWORD}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "mongodb"]
)
def harness(
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    tmp_path: Path,
    smtp_sink: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Harness:
    """Fresh databases on one backend (MongoDB: the in-process double of its API)."""
    backend: str = request.param
    numbers = itertools.count()
    if backend == "sqlite":

        def new_database() -> str:
            path = tmp_path / f"example-{next(numbers)}.db"
            path.write_bytes(sqlite_template.read_bytes())
            return f"sqlite:///{path}"

        def discard(url: str) -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)

    elif backend == "postgresql":
        postgres: PostgresTarget = request.getfixturevalue("postgres")

        async def drop(name: str) -> None:
            admin = await asyncpg.connect(
                postgres.admin_url.replace("postgresql://", "postgres://")
            )
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            finally:
                await admin.close()

        def new_database() -> str:
            return run_blocking(new_postgres_database(postgres))

        def discard(url: str) -> None:
            run_blocking(drop(url.rsplit("/", 1)[1]))

    else:

        def new_database() -> str:
            return f"mongodb://double/lifecycle_{next(numbers)}"

        def discard(url: str) -> None:
            pass  # the double's databases live in the machine's store object only

    harness = Harness(
        backend=backend, smtp=smtp_sink, new_database=new_database, discard_database=discard
    )
    monkeypatch.setattr(campaign_service_module, "new_campaign_id", harness.next_campaign_id)
    return harness


def test_lifecycle_model(harness: Harness) -> None:
    """The search: CI runs a fixed set of examples per backend (EXAMPLES_BY_BACKEND)."""
    FIGURES.clear()
    machine = _machine(harness)
    if SEED != "random":
        machine = hypothesis_seed(int(SEED))(machine)
    run_state_machine_as_test(machine, settings=_settings(EXAMPLES_BY_BACKEND[harness.backend]))
    print(f"\n{harness.backend}: " + ", ".join(f"{k} {v}" for k, v in sorted(FIGURES.items())))


# -- what the search found, as fixed cases ---------------------------------------------------


def test_a_retry_in_flight_when_the_campaign_is_cancelled_leaves_nothing_queued(
    harness: Harness,
) -> None:
    """Found by the model: the campaign is cancelled while a message is in flight; the
    server answers 451, the worker reports a retry, and the record went back to `pending`
    in a cancelled campaign — never sent, never final. It must end `cancelled`."""
    state = _machine(harness)()
    try:
        c1 = state.first_campaign(
            suppressed=set(), duration=0.5, starts_in=0, cells=[BUSY, "ada@example.com"]
        )
        state.everything_holds()
        # Both are due and go out in one group: both are `sending` when cancel() runs.
        state.interrupted_pass(minutes=29, action="cancel", at=("before send", 0))
        state.everything_holds()
        assert {r.recipient_email: r.status for r in state.records(c1)} == {
            "ada@example.com": TrackingStatus.SENT,  # in flight when cancel() returned
            BUSY: TrackingStatus.CANCELLED,
        }
    finally:
        state.teardown()


def test_a_stalled_worker_retry_does_not_reopen_a_completed_campaign(harness: Harness) -> None:
    """Found by the model: a worker stalls past its lease mid-send; another worker's pass
    turns the record `uncertain` and completes the campaign; then the first worker's server
    answers 451 and its retry put the record back to `pending` in a completed campaign.
    A worker whose lease ran out no longer holds the record: it stays `uncertain`."""
    state = _machine(harness)()
    try:
        c1 = state.first_campaign(suppressed=set(), duration=1, starts_in=0, cells=[GREYLISTED])
        state.everything_holds()
        state.interrupted_pass(minutes=45, action="stall", at=("before send", 0))
        state.everything_holds()
        assert state.campaign(c1).status is CampaignStatus.COMPLETED
        assert [r.status for r in state.records(c1)] == [TrackingStatus.UNCERTAIN]
        assert state._messages() == []  # the 451 was the only attempt: nothing left
    finally:
        state.teardown()
