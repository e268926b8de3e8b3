"""Lead statuses on every backend: setting one appends a `lead_status` event with the change;
"not interested" and "do not contact" end the person's sequence and "do not contact"
suppresses the address; the user's own labels; counts per campaign; a status changed
meanwhile is refused and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailramp.errors import ConflictError, DuplicateError, NotFoundError, ValidationError
from mailramp.storage import Store
from mailramp.tracking.models import EmailEvent, EmailTracking, EventType, TrackingStatus
from mailramp.tracking.repository import EventChange, EventLogQuery, LeadStatusMove
from tests.conftest import Services, make_campaign, make_email, make_mailbox, make_user


async def _people(services: Services) -> tuple[str, dict[str, list[EmailTracking]]]:
    """A campaign of two people, each a first email and a follow-up waiting for it."""
    user = await make_user(services)
    campaign = await make_campaign(services, user, await make_mailbox(services, user))
    now = services.clock()
    emails: dict[str, list[EmailTracking]] = {}
    for name in ("ann", "bob"):
        emails[name] = [
            make_email(
                campaign,
                f"{name}@example.com",
                step=step,
                status=TrackingStatus.PENDING if step == 1 else TrackingStatus.WAITING,
                scheduled_at=now + timedelta(hours=2) if step == 1 else None,
            )
            for step in (1, 2)
        ]
    await services.store.insert_tracking([e for pair in emails.values() for e in pair])
    return user.user_id, emails


async def _statuses(store: Store, user_id: str, emails: list[EmailTracking]) -> list[str]:
    return [
        (await store.get_tracking(user_id, e.id)).status  # type: ignore[union-attr]
        for e in emails
    ]


async def test_statuses_stop_suppress_and_are_logged(services: Services, store: Store) -> None:
    user_id, emails = await _people(services)
    ann, bob = emails["ann"][0], emails["bob"][0]
    leads = services.leads

    person = await leads.set_status(user_id, ann.campaign_id, ann.id, "Interested", source="api")
    assert (person.lead_status, person.lead_status_at) == ("interested", services.clock())
    assert await _statuses(store, user_id, emails["ann"]) == ["pending", "waiting"]
    # The same status again changes nothing and logs nothing.
    await leads.set_status(user_id, ann.campaign_id, ann.id, "interested", source="api")

    await leads.set_status(user_id, ann.campaign_id, ann.id, "not interested", source="cli")
    assert await _statuses(store, user_id, emails["ann"]) == ["stopped", "stopped"]
    assert await store.suppressed_among(user_id, ["ann@example.com"]) == set()

    await leads.set_status(user_id, bob.campaign_id, bob.id, "do-not-contact", source="inbox")
    assert await _statuses(store, user_id, emails["bob"]) == ["stopped", "stopped"]
    assert await store.suppressed_among(user_id, ["bob@example.com"]) == {"bob@example.com"}

    assert await leads.counts(user_id, ann.campaign_id) == {
        "not_interested": 1,
        "do_not_contact": 1,
    }
    log = await store.list_event_log(user_id, EventLogQuery(kinds=(EventType.LEAD_STATUS,)))
    assert [(e.recipient_email, e.details) for e in log] == [
        ("ann@example.com", {"from": None, "to": "interested", "source": "api"}),
        ("ann@example.com", {"from": "interested", "to": "not_interested", "source": "cli"}),
        ("bob@example.com", {"from": None, "to": "do_not_contact", "source": "inbox"}),
    ]
    stops = await store.list_event_log(user_id, EventLogQuery(kinds=(EventType.STOPPED,)))
    assert (
        sorted(e.recipient_email or "" for e in stops)
        == ["ann@example.com"] * 2 + ["bob@example.com"] * 2
    )


async def test_labels_of_the_users_own(services: Services) -> None:
    user_id, emails = await _people(services)
    ann = emails["ann"][0]
    leads = services.leads
    label = await leads.add_label(user_id, "  Needs   pricing ")
    assert label.name == "Needs pricing"
    with pytest.raises(DuplicateError) as duplicate:
        await leads.add_label(user_id, "needs PRICING")
    assert duplicate.value.field == "name"
    with pytest.raises(ValidationError, match="built-in") as builtin:
        await leads.add_label(user_id, "Meeting booked")
    assert builtin.value.field == "name"
    with pytest.raises(ValidationError, match="1 to 40 characters"):
        await leads.add_label(user_id, "x" * 41)
    assert await leads.choices(user_id) == [
        "interested",
        "meeting_booked",
        "meeting_completed",
        "won",
        "lost",
        "not_interested",
        "wrong_person",
        "out_of_office",
        "do_not_contact",
        "Needs pricing",
    ]

    person = await leads.set_status(
        user_id, ann.campaign_id, ann.id, "needs pricing", source="dashboard"
    )
    assert person.lead_status == "Needs pricing"
    with pytest.raises(ValidationError, match="unknown lead status 'maybe'") as unknown:
        await leads.set_status(user_id, ann.campaign_id, ann.id, "maybe", source="api")
    assert unknown.value.field == "status"
    with pytest.raises(ConflictError, match="1 people have the lead status 'Needs pricing'"):
        await leads.delete_label(user_id, "NEEDS PRICING")

    cleared = await leads.set_status(user_id, ann.campaign_id, ann.id, None, source="api")
    assert cleared.lead_status is None
    await leads.delete_label(user_id, "needs pricing")
    assert await leads.labels(user_id) == []
    with pytest.raises(NotFoundError):
        await leads.delete_label(user_id, "needs pricing")
    # Someone else's person is not found, whatever status they ask for.
    stranger = await make_user(services)
    with pytest.raises(NotFoundError):
        await leads.set_status(stranger.user_id, ann.campaign_id, ann.id, "won", source="api")


async def test_a_status_changed_meanwhile_writes_nothing(services: Services, store: Store) -> None:
    user_id, emails = await _people(services)
    ann = emails["ann"][0]
    await services.leads.set_status(user_id, ann.campaign_id, ann.id, "won", source="api")
    before = await store.list_event_log(user_id, EventLogQuery())
    stale = EmailEvent.about(
        ann, EventType.LEAD_STATUS, services.clock(), details={"from": None, "to": "lost"}
    )
    change = EventChange(
        firsts={}, stops_sequence=True, lead_status=LeadStatusMove(was=None, to="lost")
    )
    with pytest.raises(ConflictError, match="changed meanwhile"):
        await store.record_event(stale, change)
    assert await store.list_event_log(user_id, EventLogQuery()) == before
    person = await store.get_person(user_id, ann.campaign_id, "ann@example.com")
    assert person is not None and person.lead_status == "won"
    assert await _statuses(store, user_id, emails["ann"]) == ["pending", "waiting"]
