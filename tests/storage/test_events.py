"""Tracking events on every backend: first-of-kind counters, recomputation, series."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailramp.kit.ids import new_object_id
from mailramp.sending.models import Outcome, SendResult
from mailramp.sending.repository import Lease
from mailramp.suppression.models import Suppression, SuppressionReason
from mailramp.tracking.models import EmailEvent, EmailTracking, EventType, TrackingStatus
from mailramp.tracking.repository import EventChange
from tests.conftest import Services, make_campaign, make_email, make_mailbox, make_user
from tests.support.clock import MONDAY_MORNING

NOW = MONDAY_MORNING  # where the services' clock stands (tests/conftest.py)

FIRSTS = {
    "open": {"opened_at": "total_opened"},
    "human_open": {"opened_at": "total_opened", "human_opened_at": "total_human_opened"},
    "click": {"clicked_at": "total_clicks", "opened_at": "total_opened"},
    "human_click": {
        "clicked_at": "total_clicks",
        "opened_at": "total_opened",
        "human_clicked_at": "total_human_clicks",
        "human_opened_at": "total_human_opened",
    },
    "reply": {"replied_at": "total_replied"},
    "auto_reply": {"auto_replied_at": "total_auto_replied"},
    "unsubscribe": {"unsubscribed_at": "total_unsubscribed"},
    "bounce": {"bounced_at": "total_bounced"},
}
TYPES = {
    "open": EventType.OPEN,
    "human_open": EventType.OPEN,
    "click": EventType.CLICK,
    "human_click": EventType.CLICK,
    "reply": EventType.REPLY,
    "auto_reply": EventType.AUTO_REPLY,
    "unsubscribe": EventType.UNSUBSCRIBE,
    "bounce": EventType.BOUNCE,
    "complaint": EventType.COMPLAINT,
}


async def _sent_records(services: Services, count: int) -> list[EmailTracking]:
    user = await make_user(services)
    campaign = await make_campaign(
        services, user, await make_mailbox(services, user), start_time=NOW - timedelta(hours=1)
    )
    records = [
        make_email(campaign, f"e{n}@example.com", scheduled_at=NOW - timedelta(minutes=50))
        for n in range(count)
    ]
    store = services.store
    await store.insert_tracking(records)
    await store.run_lifecycle(now=NOW)
    claimed = await store.claim_due(Lease("w", NOW, NOW + timedelta(minutes=1)), limit=count)
    await store.start_sending(
        Lease("w", NOW, NOW + timedelta(minutes=1)), {r.id: f"<{r.id}@x>" for r in claimed}
    )
    await store.record_results(
        [
            SendResult(r.id, r.campaign_id, r.user_id, r.recipient_email, Outcome.SENT)
            for r in claimed
        ],
        now=NOW,
    )
    return records


def _event(record: EmailTracking, kind: str, at: datetime) -> EmailEvent:
    return EmailEvent(
        id=new_object_id(),
        record_id=record.id,
        campaign_id=record.campaign_id,
        user_id=record.user_id,
        recipient_email=record.recipient_email,
        type=TYPES[kind],
        occurred_at=at,
        machine=not kind.startswith("human") and kind in ("open", "click"),
        details={"user_agent": "<script>x</script>"},
    )


async def test_a_mailboxs_history_reads_what_became_of_its_emails_from_the_log(
    services: Services,
) -> None:
    store = services.store
    records = await _sent_records(services, 4)
    for record, kind in zip(records, ("bounce", "reply", "reply", "open"), strict=True):
        await store.record_event(
            _event(record, kind, NOW + timedelta(hours=2)), EventChange(firsts={})
        )
    # A complaint the log holds and the record does not (its field set by no change): the
    # history follows the log.
    await store.record_event(_event(records[0], "complaint", NOW), EventChange(firsts={}))
    since = NOW - timedelta(hours=1)
    emails = await store.campaign_emails_sent_since(records[0].mailbox_id, since)
    assert sorted((e.sent_at, e.bounced, e.complained, e.replied) for e in emails) == [
        (NOW, False, False, False),
        (NOW, False, False, True),
        (NOW, False, False, True),
        (NOW, True, True, False),
    ]
    assert await store.campaign_emails_sent_since(records[0].mailbox_id, NOW + timedelta(1)) == []
    assert await store.campaign_emails_sent_since(new_object_id(), since) == []


async def test_only_the_first_event_of_a_kind_counts(services: Services) -> None:
    store = services.store
    records = await _sent_records(services, 4)
    first = records[0]
    assert await store.record_event(
        _event(first, "open", NOW), EventChange(firsts=FIRSTS["open"])
    ) == {"total_opened": 1}
    assert (
        await store.record_event(_event(first, "open", NOW), EventChange(firsts=FIRSTS["open"]))
        == {}
    )
    deltas = await store.record_event(
        _event(first, "human_click", NOW + timedelta(minutes=5)),
        EventChange(firsts=FIRSTS["human_click"]),
    )
    assert deltas == {"total_clicks": 1, "total_human_clicks": 1, "total_human_opened": 1}
    metrics = await store.get_metrics_unscoped(first.campaign_id)
    assert metrics is not None
    assert (metrics.total_opened, metrics.total_clicks, metrics.total_human_opened) == (1, 1, 1)
    assert metrics.total_delivered == 4 and metrics.open_rate == 25.0
    assert metrics.human_open_rate == 25.0 and metrics.human_click_rate == 25.0
    stored = await store.get_tracking_unscoped(first.id)
    assert stored is not None and stored.opened_at == NOW
    events = await store.list_events(first.user_id, first.id)
    assert [e.type for e in events] == ["queued", "sent", "open", "open", "click"]
    assert events[2].details["user_agent"] == "<script>x</script>"  # kept as given
    assert await store.list_events(new_object_id(), first.id) == []


async def test_bounce_event_moves_status_and_suppresses(services: Services) -> None:
    store = services.store
    records = await _sent_records(services, 2)
    record = records[1]
    suppression = Suppression(
        id=new_object_id(),
        user_id=record.user_id,
        email=record.recipient_email,
        reason=SuppressionReason.BOUNCED,
        created_at=NOW,
    )
    await store.record_event(
        _event(record, "bounce", NOW),
        EventChange(
            firsts=FIRSTS["bounce"],
            suppress=suppression,
            status_from=[TrackingStatus.SENT],
            status_to=TrackingStatus.BOUNCED,
        ),
    )
    stored = await store.get_tracking_unscoped(record.id)
    assert stored is not None and stored.status == "bounced"
    assert await store.suppressed_among(record.user_id, [record.recipient_email]) == {
        record.recipient_email
    }
    metrics = await store.get_metrics_unscoped(record.campaign_id)
    assert metrics is not None
    assert (metrics.total_sent, metrics.total_bounced, metrics.total_delivered) == (2, 1, 1)
    found = await store.find_tracking_by_message_ids([f"<{record.id}@x>", "<other@x>"])
    assert [r.id for r in found] == [record.id]
    assert await store.find_tracking_by_message_ids([]) == []


async def test_series_counts_events_per_hour(services: Services) -> None:
    store = services.store
    records = await _sent_records(services, 3)
    for minutes, kind in ((5, "open"), (20, "human_open"), (70, "human_click"), (75, "click")):
        await store.record_event(
            _event(records[0], kind, NOW + timedelta(minutes=minutes)),
            EventChange(firsts=FIRSTS[kind]),
        )
    series = await store.event_series(records[0].user_id, records[0].campaign_id)
    assert series == [
        {"hour": NOW, "type": "open", "machine": False, "count": 1},
        {"hour": NOW, "type": "open", "machine": True, "count": 1},
        {"hour": NOW, "type": "queued", "machine": False, "count": 3},
        {"hour": NOW, "type": "sent", "machine": False, "count": 3},
        {"hour": NOW + timedelta(hours=1), "type": "click", "machine": False, "count": 1},
        {"hour": NOW + timedelta(hours=1), "type": "click", "machine": True, "count": 1},
    ]
    assert await store.event_series(new_object_id(), records[0].campaign_id) == []


# Each example makes its own user and campaign, so sharing the store between examples is safe.
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    script=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5),
            st.sampled_from(sorted(FIRSTS)),
            st.integers(min_value=-600, max_value=600),
        ),
        max_size=40,
    )
)
async def test_any_event_sequence_leaves_counters_equal_to_the_recompute(
    services: Services, script: list[tuple[int, str, int]]
) -> None:
    store = services.store
    records = await _sent_records(services, 6)
    for index, kind, minutes in script:  # duplicates and out-of-order times included
        await store.record_event(
            _event(records[index], kind, NOW + timedelta(minutes=minutes)),
            EventChange(firsts=FIRSTS[kind]),
        )
    counted = await store.get_metrics_unscoped(records[0].campaign_id)
    rebuilt = await store.recompute_metrics(records[0].campaign_id, now=NOW)
    assert counted is not None and rebuilt is not None
    assert counted.model_dump(exclude={"last_updated"}) == rebuilt.model_dump(
        exclude={"last_updated"}
    )
    assert counted.total_replied == len({i for i, kind, _ in script if kind == "reply"})
    assert counted.total_human_clicks == len({i for i, k, _ in script if k == "human_click"})
