"""Opens and clicks settle on every backend (tracking/classify.py): recorded at once, counted
as a person's only when their window has passed and nothing of a scanner's burst came with
them — the human counters move then, once, in the verdict's unit of work, and always equal
their recomputation from the event log.

The property test plays any interleaving of scanners' bursts and people's requests for one
email, with settling passes in between: a burst is never counted as a person, a person never
twice, and an isolated person's request always."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign
from mailramp.kit.signing import Purpose, TokenSigner
from mailramp.sending.models import Outcome, SendResult
from mailramp.sending.repository import Lease
from mailramp.tracking.classify import SCANNER_BURST, Visitor
from mailramp.tracking.models import SETTLING, EmailTracking, EventType
from tests.conftest import (
    TRACKING_KEY,
    Services,
    make_campaign,
    make_email,
    make_mailbox,
    make_user,
)
from tests.support.clock import FakeClock

SIGNER = TokenSigner([TRACKING_KEY])
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"
LINKS = 3
HTML = (
    "<html><body><p>Hi</p>"
    + "".join(f'<p><a href="https://acme.com/{n}">link {n}</a></p>' for n in range(LINKS))
    + "</body></html>"
)


async def _sent(services: Services, count: int) -> tuple[User, Campaign, list[EmailTracking]]:
    """A user's HTML campaign with `count` emails sent ten minutes ago."""
    clock = services.clock
    user = await make_user(services)
    campaign = await make_campaign(
        services,
        user,
        await make_mailbox(services, user),
        start_time=clock() - timedelta(hours=1),
        message=HTML,
        message_format="html",
    )
    records = [
        make_email(campaign, f"p{n}@example.com", scheduled_at=clock() - timedelta(minutes=50))
        for n in range(count)
    ]
    store = services.store
    now = clock() - timedelta(minutes=10)
    lease = Lease("w", now, now + timedelta(minutes=1))
    await store.insert_tracking(records)
    await store.run_lifecycle(now=now)
    claimed = await store.claim_due(lease, limit=count)
    await store.start_sending(lease, {r.id: f"<{r.id}@x>" for r in claimed})
    await store.record_results(
        [
            SendResult(r.id, r.campaign_id, r.user_id, r.recipient_email, Outcome.SENT)
            for r in claimed
        ],
        now=now,
    )
    return user, campaign, records


async def _open(services: Services, record: EmailTracking, visitor: Visitor) -> None:
    assert await services.tracking.open(SIGNER.sign(Purpose.OPEN, record.id), visitor)


async def _click(services: Services, record: EmailTracking, link: int, visitor: Visitor) -> None:
    token = SIGNER.sign(Purpose.CLICK, record.id, link)
    assert await services.tracking.click(token, visitor) == f"https://acme.com/{link}"


async def _unsubscribe_page(services: Services, record: EmailTracking, visitor: Visitor) -> None:
    token = SIGNER.sign(Purpose.UNSUBSCRIBE, record.id)
    assert await services.tracking.unsubscribe_page(token, visitor) is not None


async def _counters(services: Services, campaign: Campaign) -> dict[str, int]:
    counted = await services.store.get_metrics_unscoped(campaign.campaign_id)
    rebuilt = await services.store.recompute_metrics(campaign.campaign_id, now=services.clock())
    assert counted is not None and rebuilt is not None
    skip = {"last_updated"}
    assert counted.model_dump(exclude=skip) == rebuilt.model_dump(exclude=skip)
    return {
        name: int(getattr(counted, name))
        for name in ("total_opened", "total_clicks", "total_human_opened", "total_human_clicks")
    }


async def test_a_persons_open_and_click_count_when_they_settle(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    _, campaign, (record, *_) = await _sent(services, 2)
    person = Visitor(BROWSER, "203.0.113.7")
    await _open(services, record, person)
    clock.advance(seconds=3)
    await _click(services, record, 1, person)
    # Something opened it and clicked: counted at once; whether a person did, not yet.
    assert await _counters(services, campaign) == {
        "total_opened": 1,
        "total_clicks": 1,
        "total_human_opened": 0,
        "total_human_clicks": 0,
    }
    events = await services.store.list_events(record.user_id, record.id)
    assert [(e.type, e.machine_reason) for e in events[-2:]] == [
        (EventType.OPEN, SETTLING),
        (EventType.CLICK, SETTLING),
    ]
    clock.advance(seconds=29)  # the open's window has passed, the click's not yet
    assert await services.tracking.settle() == 1
    counters = await _counters(services, campaign)
    assert (counters["total_human_opened"], counters["total_human_clicks"]) == (1, 0)
    clock.advance(seconds=5)
    assert await services.tracking.settle() == 1
    assert await services.tracking.settle() == 0  # nothing is decided twice
    assert await _counters(services, campaign) == {
        "total_opened": 1,
        "total_clicks": 1,
        "total_human_opened": 1,
        "total_human_clicks": 1,
    }
    stored = await services.store.get_tracking(record.user_id, record.id)
    assert stored is not None and stored.human_opened_at == events[-2].occurred_at
    assert stored.human_clicked_at == events[-1].occurred_at


async def test_a_burst_is_a_scanner_and_a_persons_later_click_still_counts(
    services: Services,
) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    _, campaign, (record, *_) = await _sent(services, 1)
    chrome = Visitor("Mozilla/5.0 (Windows NT 10.0) Chrome/126.0 Safari/537.36", "198.51.100.9")
    await _open(services, record, chrome)
    for link in range(LINKS):
        clock.advance(seconds=0.2)
        await _click(services, record, link, chrome)
    clock.advance(seconds=0.2)
    await _unsubscribe_page(services, record, chrome)
    clock.advance(seconds=31)
    assert await services.tracking.settle() == LINKS + 2
    events = await services.store.list_events(record.user_id, record.id)
    fetched = [e for e in events if e.type is not EventType.SENT and e.type is not EventType.QUEUED]
    assert {e.machine_reason for e in fetched} == {SCANNER_BURST}
    assert fetched[1].details["machine"] == {"urls": 5, "seconds": 0.8, "because": "links"}
    assert (await _counters(services, campaign))["total_human_clicks"] == 0
    clock.advance(minutes=20)  # the person reads it later and clicks one link
    await _click(services, record, 0, Visitor(BROWSER, "203.0.113.7"))
    clock.advance(seconds=31)
    assert await services.tracking.settle() == 1
    assert await _counters(services, campaign) == {
        "total_opened": 1,
        "total_clicks": 1,
        "total_human_opened": 1,
        "total_human_clicks": 1,
    }


async def test_two_settlers_deciding_the_same_events_count_them_once(services: Services) -> None:
    from mailramp.tracking.classify import settle
    from mailramp.tracking.service import settled_event

    clock = services.clock
    assert isinstance(clock, FakeClock)
    _, campaign, (record, *_) = await _sent(services, 1)
    await _click(services, record, 0, Visitor(BROWSER, "203.0.113.7"))
    clock.advance(seconds=31)
    events = await services.store.list_events(record.user_id, record.id)
    rules = services.tracking.rules
    verdicts = [settled_event(e, v) for e, v in settle(events, rules, now=clock())]
    first = await services.store.settle_events(record.id, verdicts)
    second = await services.store.settle_events(record.id, verdicts)  # a worker that was late
    assert (len(first), len(second)) == (1, 0)
    assert (await _counters(services, campaign))["total_human_clicks"] == 1


async def test_the_event_log_shows_an_open_once_it_has_settled(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    user, _, (record, *_) = await _sent(services, 1)
    before = await services.tracking.event_log(user.user_id)
    await _open(services, record, Visitor(BROWSER, "203.0.113.7"))
    # Readers by cursor (the API, webhooks) never see a verdict that could still change.
    assert await services.tracking.event_log(user.user_id) == before
    clock.advance(seconds=31)
    # No worker ran: the reader decides what is due itself.
    after = await services.tracking.event_log(user.user_id)
    assert len(after) == len(before) + 1
    assert after[-1].type is EventType.OPEN and not after[-1].machine
    assert after[-1].machine_reason is None


# One email's requests, as (seconds after a start, actor, what): a scanner's burst is
# several distinct URLs within a second; a person fetches one link (maybe after the pixel).
Request = tuple[float, str, str]


@st.composite
def interleavings(draw: st.DrawFn) -> list[Request]:
    requests: list[Request] = []
    for n in range(draw(st.integers(0, 3))):
        start = draw(st.floats(0, 3600))
        targets = draw(
            st.lists(
                st.sampled_from(["pixel", "link 0", "link 1", "link 2", "unsubscribe"]),
                min_size=2,
                max_size=5,
                unique=True,
            ).filter(lambda t: len([x for x in t if x != "pixel"]) >= 2)
        )
        for k, target in enumerate(targets):
            requests.append((start + 0.2 * k, f"scanner {n}", target))
    for n in range(draw(st.integers(0, 3))):
        start = draw(st.floats(0, 3600))
        if draw(st.booleans()):
            requests.append((start, f"person {n}", "pixel"))
        link = draw(st.sampled_from(["link 0", "link 1", "link 2"]))
        requests.append((start + draw(st.floats(0, 120)), f"person {n}", link))
    return sorted(requests)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=interleavings(), settle_every=st.floats(1, 600))
async def test_any_interleaving_never_counts_a_burst_as_a_person_nor_a_person_twice(
    services: Services, requests: list[Request], settle_every: float
) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    _, campaign, (record, *_) = await _sent(services, 1)
    started, last_settled = clock(), clock()
    window = services.tracking.rules.burst.total_seconds()
    actors = sorted({actor for _, actor, _ in requests})
    addresses = {actor: f"203.0.113.{n + 1}" for n, actor in enumerate(actors)}
    for at, actor, target in requests:
        clock.now = started + timedelta(seconds=at)
        if (clock() - last_settled).total_seconds() >= settle_every:
            await services.tracking.settle()  # a worker's pass, between requests
            last_settled = clock()
        visitor = Visitor(BROWSER, addresses[actor])
        if target == "pixel":
            await _open(services, record, visitor)
        elif target == "unsubscribe":
            await _unsubscribe_page(services, record, visitor)
        else:
            await _click(services, record, int(target.split()[1]), visitor)
    clock.advance(hours=2)
    await services.tracking.settle()

    events = [
        e
        for e in await services.store.list_events(record.user_id, record.id, limit=1000)
        if e.type in (EventType.OPEN, EventType.CLICK, EventType.UNSUBSCRIBE_PAGE)
    ]
    assert len(events) == len(requests) and not any(e.settling for e in events)
    # Every request of a scanner is a machine's, whoever came near it.
    for (_, actor, _), event in zip(requests, events, strict=True):
        if actor.startswith("scanner"):
            assert event.machine, (actor, event.type, event.machine_reason)

    # A person alone (nobody else's request within the burst window) is a person.
    def alone(at: float, actor: str) -> bool:
        return all(abs(other - at) > window for other, who, _ in requests if who != actor)

    people_clicks = [
        event
        for (at, actor, target), event in zip(requests, events, strict=True)
        if actor.startswith("person") and target.startswith("link") and alone(at, actor)
    ]
    assert all(not event.machine for event in people_clicks)
    counters = await _counters(services, campaign)  # equal to the recomputation
    human_clicks = [e for e in events if e.type is EventType.CLICK and not e.machine]
    # One person counted at most once, and once exactly when any of their clicks is theirs.
    assert counters["total_human_clicks"] == (1 if human_clicks else 0)
    stored = await services.store.get_tracking(record.user_id, record.id)
    assert stored is not None
    if human_clicks:
        assert stored.human_clicked_at == min(e.occurred_at for e in human_clicks)
    else:
        assert stored.human_clicked_at is None
