"""Outgoing webhooks on every backend, delivered over real HTTP to receivers on loopback
(uvicorn) and checked with the `standardwebhooks` package — the scheme's reference
implementation, not ours: every event kind arrives signed; a receiver down for five minutes
loses nothing and keeps each person's order; a dead endpoint holds up no other; 410 Gone
and sustained failure disable; redelivery, secret rotation and the private-address rule."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from functools import partial

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from mailramp.errors import NotFoundError, ValidationError
from mailramp.kit.secrets import SecretBox, generate_key
from mailramp.providers.webhooks import HttpWebhookPoster
from mailramp.storage import Store
from mailramp.tracking.models import BACKFILLED, EmailEvent, EmailTracking, EventType
from mailramp.tracking.repository import EventChange
from mailramp.webhooks.dispatcher import WebhookDispatcher
from mailramp.webhooks.models import MessageStatus
from mailramp.webhooks.service import WebhookService
from tests.conftest import Services, make_campaign, make_email, make_mailbox, make_user
from tests.support.clock import FakeClock
from tests.support.webhook_receiver import Received, WebhookReceiver


@pytest.fixture
def receivers() -> Iterator[list[WebhookReceiver]]:
    started: list[WebhookReceiver] = []
    yield started
    for receiver in started:
        receiver.stop()


@pytest.fixture
async def dispatchers() -> AsyncIterator[list[WebhookDispatcher]]:
    made: list[WebhookDispatcher] = []
    yield made
    for dispatcher in made:
        await dispatcher.close()


def _receiver(receivers: list[WebhookReceiver], **options: int) -> WebhookReceiver:
    receiver = WebhookReceiver(**options).start()
    receivers.append(receiver)
    return receiver


def _webhooks(
    store: Store,
    services: Services,
    secret_box: SecretBox,
    made: list[WebhookDispatcher],
    *,
    allow_private: bool = True,
) -> tuple[WebhookService, WebhookDispatcher]:
    """The webhook service and dispatcher as the runtime wires them, allowed to reach
    loopback (the receivers) unless `allow_private` is off."""
    dispatcher = WebhookDispatcher(
        store,
        services.tracking,
        secret_box,
        partial(HttpWebhookPoster, allow_private_hosts=allow_private),
        clock=services.clock,
    )
    service = WebhookService(
        store, secret_box, dispatcher, clock=services.clock, allow_private_hosts=allow_private
    )
    made.append(dispatcher)
    return service, dispatcher


async def _people(services: Services, count: int) -> list[EmailTracking]:
    user = await make_user(services)
    campaign = await make_campaign(services, user, await make_mailbox(services, user))
    records = [make_email(campaign, f"p{n}@example.com") for n in range(count)]
    await services.store.insert_tracking(records)  # each one's `queued` event
    return records


async def _event(store: Store, record: EmailTracking, kind: EventType, at: object) -> None:
    event = EmailEvent.about(record, kind, at, details={"n": kind.value})  # type: ignore[arg-type]
    await store.record_event(event, EventChange(firsts={}))


def _verified(secret: str, received: list[Received]) -> list[dict[str, object]]:
    """Each body, after the reference implementation checked its signature and timestamp."""
    return [Webhook(secret).verify(r.body, r.headers) for r in received]


async def test_every_event_kind_arrives_signed(
    services: Services,
    store: Store,
    secret_box: SecretBox,
    receivers: list[WebhookReceiver],
    dispatchers: list[WebhookDispatcher],
) -> None:
    everything, replies = _receiver(receivers), _receiver(receivers)
    people = await _people(services, 3)
    user_id = people[0].user_id
    webhooks, dispatcher = _webhooks(store, services, secret_box, dispatchers)
    all_kinds, secret = await webhooks.add_endpoint(user_id, everything.url)
    some, some_secret = await webhooks.add_endpoint(
        user_id, replies.url, kinds=["lead_status", "reply"]
    )
    assert secret.startswith("whsec_") and some_secret != secret
    assert some.kinds == ["reply", "lead_status"]  # in the log's order
    assert all_kinds.cursor == 3  # the three `queued` events before it are not sent

    kinds = [kind for kind in EventType if kind is not EventType.QUEUED]
    for n, kind in enumerate(kinds):
        await _event(store, people[n % 3], kind, services.clock())
    await services.store.insert_tracking([])  # nothing: no event
    # An event an upgrade wrote for a moment older than the log is history: never pushed.
    history = EmailEvent.about(
        people[0], EventType.OPEN, services.clock(), details={BACKFILLED: "opened_at"}
    )
    await store.record_event(history, EventChange(firsts={}))
    assert await dispatcher.run_once() == len(kinds) + 2

    bodies = _verified(secret, everything.take())
    assert sorted(b["type"] for b in bodies) == sorted(k.value for k in kinds)  # type: ignore[type-var]
    first = next(b for b in bodies if b["type"] == "open")
    data = first["data"]
    assert isinstance(data, dict)
    assert (data["recipient_email"], data["details"], data["campaign_id"]) == (
        people[kinds.index(EventType.OPEN) % 3].recipient_email,
        {"n": "open"},
        people[0].campaign_id,
    )
    assert [b["type"] for b in _verified(some_secret, replies.take())] == ["reply", "lead_status"]
    # Signed for one endpoint, refused by another's secret.
    everything_again = await webhooks.send_test(user_id, all_kinds.id)
    assert (everything_again.status_code, everything_again.error) == (200, None)
    (test,) = everything.take()
    assert Webhook(secret).verify(test.body, test.headers)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook(some_secret).verify(test.body, test.headers)

    log = await webhooks.messages(user_id, all_kinds.id)
    assert log.total == len(kinds) + 1
    assert {m.status for m in log.items} == {MessageStatus.DELIVERED}
    attempts = await webhooks.attempts(user_id, log.items[-1].id)
    assert [(a.status_code, a.error) for a in attempts] == [(200, None)]
    assert attempts[0].latency_ms >= 0
    # Nothing new: nothing sent again.
    assert await dispatcher.run_once() == 0


async def test_a_receiver_down_for_five_minutes_loses_nothing_and_keeps_order(
    services: Services,
    store: Store,
    secret_box: SecretBox,
    receivers: list[WebhookReceiver],
    dispatchers: list[WebhookDispatcher],
) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    flaky, healthy = _receiver(receivers), _receiver(receivers)
    people = await _people(services, 3)
    user_id = people[0].user_id
    webhooks, dispatcher = _webhooks(store, services, secret_box, dispatchers)
    down, down_secret = await webhooks.add_endpoint(user_id, flaky.url)
    _, healthy_secret = await webhooks.add_endpoint(user_id, healthy.url)
    flaky.stop()
    order = [EventType.SENT, EventType.OPEN, EventType.CLICK, EventType.REPLY]
    for kind in order:
        for record in people:
            await _event(store, record, kind, clock())

    # The healthy endpoint gets everything at once; the dead one costs it nothing.
    await dispatcher.run_once()
    assert len(_verified(healthy_secret, healthy.take())) == 12
    failing = await webhooks.messages(user_id, down.id, status=MessageStatus.PENDING)
    assert failing.total == 12
    tried = [m for m in failing.items if m.attempts]
    assert sorted(m.type for m in tried) == ["sent"] * 3  # each person's first, only
    (attempt,) = await webhooks.attempts(user_id, tried[0].id)
    assert attempt.status_code is None and "ConnectError" in (attempt.error or "")
    # Retried after ~5 s, then ~5 min: still down.
    for wait in (timedelta(seconds=6), timedelta(minutes=5, seconds=31)):
        clock.advance(seconds=wait.total_seconds())
        await dispatcher.run_once()
    assert {m.attempts for m in (await webhooks.messages(user_id, down.id)).items} == {0, 3}

    flaky.start()  # back on the same port
    clock.advance(minutes=33)  # the third retry comes ~30 min after the second
    await dispatcher.run_once()
    bodies = _verified(down_secret, flaky.take())
    seen = {(b["data"]["recipient_email"], b["type"]) for b in bodies}  # type: ignore[index]
    assert len(seen) == 12  # every event, once at least
    assert len({b["data"]["_id"] for b in bodies}) == 12  # type: ignore[index]
    for record in people:
        mine = [b["type"] for b in bodies if b["data"]["recipient_email"] == record.recipient_email]  # type: ignore[index]
        assert mine == [kind.value for kind in order]  # in the order they happened
    assert (await webhooks.messages(user_id, down.id, status=MessageStatus.PENDING)).total == 0
    endpoint = await webhooks.get_endpoint(user_id, down.id)
    assert endpoint.enabled and endpoint.failing_since is None


async def test_gone_and_sustained_failure_disable_and_nothing_is_lost(
    services: Services,
    store: Store,
    secret_box: SecretBox,
    receivers: list[WebhookReceiver],
    dispatchers: list[WebhookDispatcher],
) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    gone, failing = _receiver(receivers, status=410), _receiver(receivers, status=500)
    (person,) = await _people(services, 1)
    user_id = person.user_id
    webhooks, dispatcher = _webhooks(store, services, secret_box, dispatchers)
    gone_endpoint, _ = await webhooks.add_endpoint(user_id, gone.url)
    failing_endpoint, secret = await webhooks.add_endpoint(user_id, failing.url)
    await _event(store, person, EventType.SENT, clock())
    await dispatcher.run_once()
    stopped = await webhooks.get_endpoint(user_id, gone_endpoint.id)
    assert not stopped.enabled and "410 Gone" in (stopped.disabled_reason or "")
    assert len(gone.take()) == 1

    # 500 on every retry: the schedule (5 s, 5 min, 30 min, 2 h … 24 h) runs out after
    # 10 attempts, about 76 hours.
    for _ in range(12):
        (message,) = (await webhooks.messages(user_id, failing_endpoint.id)).items
        if message.next_attempt_at is None:
            break
        clock.now = max(clock.now, message.next_attempt_at)
        await dispatcher.run_once()
    assert len(failing.take()) == 10
    assert timedelta(hours=68) < clock.now - person.created_at < timedelta(hours=84)
    (message,) = (await webhooks.messages(user_id, failing_endpoint.id)).items
    assert (message.status, message.attempts, message.last_status_code) == (
        MessageStatus.FAILED,
        10,
        500,
    )
    # Messages keep failing for five days: the endpoint is disabled, with the reason.
    assert (await webhooks.get_endpoint(user_id, failing_endpoint.id)).enabled
    clock.advance(days=3)  # the schedule took 68 to 84 hours (jitter): now past 5 days
    await _event(store, person, EventType.OPEN, clock())
    await dispatcher.run_once()
    tired = await webhooks.get_endpoint(user_id, failing_endpoint.id)
    assert not tired.enabled and "every delivery failed since" in (tired.disabled_reason or "")
    assert [json.loads(r.body)["type"] for r in failing.take()] == ["open"]  # answered 500
    # Events while it is off wait in its log; enabled again, they all go.
    await _event(store, person, EventType.CLICK, clock())
    await dispatcher.run_once()
    assert failing.take() == []
    failing.status = 200
    await webhooks.update_endpoint(user_id, failing_endpoint.id, enabled=True)
    again = await webhooks.redeliver(user_id, message.id)
    assert (again.status, again.attempts) == (MessageStatus.PENDING, 0)
    await dispatcher.run_once()
    types = [b["type"] for b in _verified(secret, failing.take())]
    assert sorted(types) == ["click", "open", "sent"]
    assert types.index("open") < types.index("click")


async def test_rotation_private_addresses_and_owners(
    services: Services,
    store: Store,
    secret_box: SecretBox,
    key: str,
    receivers: list[WebhookReceiver],
    dispatchers: list[WebhookDispatcher],
) -> None:
    receiver = _receiver(receivers)
    (person,) = await _people(services, 1)
    user_id = person.user_id
    webhooks, dispatcher = _webhooks(store, services, secret_box, dispatchers)
    endpoint, old = await webhooks.add_endpoint(user_id, receiver.url, description="CRM")
    new = await webhooks.rotate_secret(user_id, endpoint.id)
    assert new != old
    await _event(store, person, EventType.REPLY, services.clock())
    await dispatcher.run_once()
    (received,) = receiver.take()
    # Signed with both for a day: a receiver on either secret accepts it.
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(received.body, received.headers)["type"] == "reply"
    assert json.loads(received.body)["data"]["seq"] == 2

    # `mailramp keys rotate`: both secrets re-encrypted; the old key can then go.
    newest = generate_key()
    rotating, _ = _webhooks(store, services, SecretBox([newest, key]), dispatchers)
    assert await rotating.rotate_keys() == 2
    _, only_newest = _webhooks(store, services, SecretBox([newest]), dispatchers)
    await _event(store, person, EventType.LEAD_STATUS, services.clock())
    await only_newest.run_once()
    (after,) = receiver.take()
    assert Webhook(new).verify(after.body, after.headers)["type"] == "lead_status"

    with pytest.raises(ValidationError) as bad_kind:
        await webhooks.add_endpoint(user_id, receiver.url, kinds=["reply", "teleported"])
    assert bad_kind.value.field == "kinds.1"
    for url in ("ftp://example.com/x", "https://user:pw@example.com/x", "not a url"):
        with pytest.raises(ValidationError) as bad_url:
            await webhooks.add_endpoint(user_id, url)
        assert bad_url.value.field == "url"
    strict, _ = _webhooks(store, services, secret_box, dispatchers, allow_private=False)
    for private in (
        receiver.url,
        "http://10.1.2.3/x",
        "http://[::1]:8080/",
        "http://169.254.169.254/",
    ):
        with pytest.raises(ValidationError, match="non-public address") as refused:
            await strict.add_endpoint(user_id, private)
        assert refused.value.field == "url"
    stranger = await make_user(services)
    with pytest.raises(NotFoundError):
        await webhooks.get_endpoint(stranger.user_id, endpoint.id)
    assert await webhooks.list_endpoints(stranger.user_id) == []
    await webhooks.delete_endpoint(user_id, endpoint.id)
    assert await webhooks.list_endpoints(user_id) == []
