"""`email_campaigns` → campaigns (mailramp migrate-legacy) on every backend: the mapping, a
report of every skipped document, idempotence, originals untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from mailramp.campaigns.repository import CampaignQuery
from mailramp.kit.ids import new_object_id
from mailramp.legacy.migrate import campaign_id_for, migrate
from mailramp.legacy.models import LegacyCollection
from tests.conftest import Services, make_mailbox, make_user

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def _each(documents: Iterable[Mapping[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    for document in documents:
        yield document


async def test_legacy_campaigns_migrate_once_with_a_report(services: Services) -> None:
    ann = await make_user(services)
    box = await make_mailbox(services, ann, email="ann@acme.com")
    good, by_sender, html, ghost = (new_object_id() for _ in range(4))
    documents: list[dict[str, Any]] = [
        {
            "_id": {"$oid": good},
            "user_id": {"$oid": ann.id},
            "mailbox_id": box.mailbox_id,
            "name": "Spring push",
            "subject": "Hello {{first_name}}",
            "body": "Hi there",
            "start_time": {"$date": "2024-03-01T09:00:00Z"},
            "duration": 48,
            "status": "finished",
            "recipients": ["a@x.com", "b@x.com", "c@x.com"],
            "sent": 3,
            "opens": 2,
            "clicks": 1,
            "bounced": 1,
            "replies": 1,
            "tags": ["q1", "warm"],
            "owner_note": "from the old app",
        },
        {
            "_id": by_sender,
            "user_id": ann.id,
            "sender_email": "ANN@acme.com",
            "subject": "Second",
            "message": "Body",
            "scheduled_at": "2024-04-01T08:00:00+00:00",
            "end_time": "2024-04-02T08:00:00+00:00",
            "status": "draft",
        },
        {
            "_id": html,
            "user_id": ann.id,
            "mailbox_id": box.mailbox_id,
            "subject": "HTML one",
            "html": "<p>Hi</p>",
            "created_at": datetime(2024, 5, 1, tzinfo=UTC),
            "duration": 2,
            "status": "running",
        },
        # Malformed or unmigratable ones, each with its reason:
        {"user_id": ann.id, "subject": "no id", "message": "x", "duration": 1},
        {"_id": ghost, "user_id": new_object_id(), "subject": "s", "message": "m", "duration": 1},
        {"_id": new_object_id(), "user_id": ann.id, "mailbox_id": box.mailbox_id,
         "subject": "s", "message": "m", "duration": 1, "status": "exploded"},
        {"_id": new_object_id(), "user_id": ann.id, "mailbox_id": box.mailbox_id,
         "subject": "s", "message": "m"},
        {"_id": new_object_id(), "user_id": ann.id, "sender_email": "nobody@acme.com",
         "subject": "s", "message": "m", "duration": 1},
        {"_id": new_object_id(), "user_id": ann.id, "mailbox_id": box.mailbox_id,
         "message": "m", "duration": 1},
        {"_id": new_object_id(), "user_id": ann.id, "mailbox_id": box.mailbox_id,
         "subject": "s", "message": "m", "duration": 1, "sent": -4},
    ]  # fmt: skip
    store = services.store

    dry = await migrate(store, _each(documents), dry_run=True, now=NOW)
    assert (dry.read, dry.migrated, dry.already_migrated, len(dry.skipped)) == (10, 3, 0, 7)
    assert await store.get_campaign_unscoped(campaign_id_for(good)) is None  # nothing written

    report = await migrate(store, _each(documents), now=NOW)
    assert (report.migrated, report.already_migrated) == (3, 0)
    reasons = sorted(skipped.reason for skipped in report.skipped)
    assert reasons == sorted(
        [
            "no ObjectId _id",
            f"user {documents[4]['user_id']} does not exist",
            "status 'exploded' has no equivalent",
            "no duration or end_time",
            "mailbox 'nobody@acme.com' is not one of the user's mailboxes",
            "no subject",
            "total_sent -4 is not a count",
        ]
    )
    assert report.skipped[0].document_id == "document 4"

    first = await store.get_campaign_unscoped(campaign_id_for(good))
    assert first is not None and first.id == good and first.user_id == ann.id
    assert first.campaign_name == "Spring push" and first.message == "Hi there"
    assert first.status == "completed" and first.total_recipients == 3
    assert first.start_time == datetime(2024, 3, 1, 9, tzinfo=UTC) and first.duration == 48
    assert first.legacy_fields == {
        "recipients": ["a@x.com", "b@x.com", "c@x.com"],
        "tags": ["q1", "warm"],
        "owner_note": "from the old app",
    }
    metrics = await store.get_metrics(ann.id, first.campaign_id)
    assert metrics is not None
    assert (metrics.total_sent, metrics.total_opened, metrics.total_clicks) == (3, 2, 1)
    assert (metrics.total_bounced, metrics.total_delivered, metrics.total_replied) == (1, 2, 1)
    assert (metrics.open_rate, metrics.bounce_rate) == (100.0, 33.33)
    second = await store.get_campaign_unscoped(campaign_id_for(by_sender))
    assert second is not None and second.mailbox_id == box.mailbox_id
    assert second.status == "paused" and second.duration == 24
    third = await store.get_campaign_unscoped(campaign_id_for(html))
    assert third is not None and third.message_format == "html" and third.status == "active"

    again = await migrate(store, _each(documents), now=NOW)
    assert (again.migrated, again.already_migrated, len(again.skipped)) == (0, 3, 7)
    page = await store.list_campaigns(ann.id, CampaignQuery())
    assert page.total == 3


async def test_documents_kept_in_the_database_migrate_and_stay_as_they_were(
    services: Services,
) -> None:
    ann = await make_user(services)
    box = await make_mailbox(services, ann)
    legacy_id = new_object_id()
    original = {
        "_id": legacy_id,
        "user_id": ann.id,
        "mailbox_id": box.mailbox_id,
        "subject": "Kept",
        "message": "Body",
        "duration": 5,
        "status": "completed",
        "extra": {"nested": True},
    }
    await services.legacy.import_documents("email_campaigns", [original])
    before = await services.legacy.get_document("email_campaigns", ann.user_id, legacy_id)
    source = [
        legacy.document
        async for legacy in services.store.iter_legacy(LegacyCollection.EMAIL_CAMPAIGNS)
    ]
    report = await migrate(services.store, _each(source), now=NOW)
    assert report.migrated == 1 and report.skipped == []
    after = await services.legacy.get_document("email_campaigns", ann.user_id, legacy_id)
    assert after == before  # the original is untouched
    campaign = await services.store.get_campaign_unscoped(campaign_id_for(legacy_id))
    assert campaign is not None and campaign.legacy_fields == {"extra": {"nested": True}}
