"""A property of sequences (hypothesis): whatever happens — replies and stops at any
moment, workers that die after marking emails `sending`, the clock moving by hours or
days — no email goes to a person after their stop, no (person, step) gets two emails, no
step comes before the one it follows, and no mailbox sends more than its daily limit on
any day. Through the real worker and a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta
from email.utils import parsedate_to_datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailramp.errors import ConflictError
from mailramp.sending.repository import Lease
from tests.sending.conftest import START, World
from tests.support.smtp import Received

PEOPLE = 6
LIMIT = 4
SERIAL = itertools.count(1)

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(1, 40)),  # hours
        st.tuples(st.just("reply"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("stop"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("crash"), st.integers(1, 3)),  # emails a dying worker marks
    ),
    max_size=14,
)


# Each example has its own sender, mailbox and campaign, and looks only at their emails.
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=ACTIONS)
async def test_no_email_after_a_stop_none_twice_and_no_day_over_a_limit(
    world: World, actions: list[tuple[str, int]]
) -> None:
    world.clock.now = START
    address = f"prop{next(SERIAL)}@acme.com"
    world.smtp.inbox.accounts[address] = "smtp-password"
    user, mailbox = await world.sender(email=address, daily_limit=LIMIT)
    people = [f"p{n}@example.com" for n in range(PEOPLE)]
    campaign, _ = await world.campaign(
        user,
        mailbox,
        "email\n" + "".join(f"{p}\n" for p in people),
        duration=24 * 8,
        campaign_steps=[
            {"delay_days": 1, "message": "Second"},
            {"delay_days": 1, "subject": "Third", "message": "Third"},
        ],
    )
    worker = world.worker()
    stopped_after: dict[str, int] = {}  # person → how many of our emails had left by then

    def ours() -> list[Received]:
        return [m for m in world.smtp.inbox.messages if m.sender == address]

    async def first_email_id(person: str) -> str:
        emails = await world.store.sequence_emails(campaign.campaign_id, person)
        return emails[0].id

    for action, value in actions:
        if action == "wait":
            await world.run(worker, until=world.clock.now + timedelta(hours=value), step_minutes=60)
        elif action in ("reply", "stop"):
            person = people[value]
            record_id = await first_email_id(person)
            try:
                if action == "reply":
                    await world.tracking.mark_replied(user.user_id, campaign.campaign_id, record_id)
                else:
                    await world.tracking.stop(user.user_id, campaign.campaign_id, record_id)
            except ConflictError:  # not emailed yet: nothing to reply to; stop them instead
                await world.tracking.stop(user.user_id, campaign.campaign_id, record_id)
            stopped_after.setdefault(person, len(ours()))
        else:  # a worker claims and marks emails `sending`, then dies before sending them
            now = world.clock.now
            lease = Lease(f"dead-{next(SERIAL)}", now, now + timedelta(minutes=2))
            claimed = await world.store.claim_due(lease, limit=value)
            await world.store.start_sending(lease, {r.id: f"<{r.id}@dead>" for r in claimed})
    await world.run(worker, until=campaign.end_time + timedelta(minutes=10), step_minutes=120)
    await worker.close()

    sent = ours()
    steps = {}
    for person in people:
        for email in await world.store.sequence_emails(campaign.campaign_id, person):
            steps[email.id] = (person, email.step)
    keys = [m.message["Message-ID"].strip("<>").split(".")[0] for m in sent]
    assert len(keys) == len(set(keys))  # one email per (person, step)
    # No email after a stop.
    for person, before in stopped_after.items():
        later = [m for m in ours()[before:] if m.message["To"] == person]
        assert later == [], person
    # Steps in order, each once.
    by_person: dict[str, list[int]] = {}
    for key in keys:
        person, step = steps[key]
        by_person.setdefault(person, []).append(step)
    for person, got in by_person.items():
        assert got == sorted(set(got)), (person, got)
        assert got == [1, 2, 3][: len(got)], (person, got)
    # No day over the mailbox's limit.
    days = Counter(parsedate_to_datetime(m.message["Date"]).date() for m in sent)
    assert max(days.values(), default=0) <= LIMIT, days
