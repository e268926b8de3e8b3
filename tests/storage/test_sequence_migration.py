"""Upgrading to sequences (SQL 0014_sequences, MongoDB mongo-0014) turns every campaign into
a one-step campaign with nothing lost: its emails are step 1, each recipient is a person
holding what already happened to their email, and the counters — which now count people —
go on from where they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId
from sqlalchemy import text

from mailramp.storage.mongo import MongoStore
from mailramp.storage.mongo.codec import RECIPIENTS, TRACKING
from mailramp.storage.mongo.upgrade import OLD_UNIQUE_INDEX
from mailramp.storage.sql import SqlStore
from mailramp.storage.sql.migrate import head_revision, upgrade
from mailramp.tracking.events import OPEN
from mailramp.tracking.models import EmailEvent, EventType, TrackingStatus
from mailramp.tracking.repository import EventChange, EventLogQuery
from tests.storage.test_migrations import BOX, CAMPAIGN, CAMPAIGN_ID, USER

OPENED, UNOPENED = "0123456789abcdef0123456a", "0123456789abcdef0123456b"


async def test_an_existing_campaign_becomes_a_one_step_campaign(empty_database: str) -> None:
    store = SqlStore.from_url(empty_database)
    try:
        await upgrade(store.engine, "0013_variants")
        now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
        at = now.replace(tzinfo=None) if store.backend == "sqlite" else now
        rows = [
            "INSERT INTO user_information_table (_id, user_id, user_name, login_id, created_at, "
            "updated_at, is_active) VALUES (:u, :u, 'Old', 'old', :t, :t, :yes)",
            "INSERT INTO linkbox_box_table (_id, mailbox_id, user_id, email, provider, "
            "user_profile, is_primary, is_active, status, created_at, updated_at, daily_limit) "
            "VALUES (:b, :b, :u, 'old@example.com', 'outlook', '{}', :yes, :yes, 'active', :t, "
            ":t, 50)",
            "INSERT INTO campaign_creation_table (_id, campaign_id, user_id, mailbox_id, "
            "campaign_name, subject, message, duration, start_time, end_time, status, "
            "total_recipients, created_at, updated_at, created_by) VALUES (:c, :cid, :u, :b, "
            "'Old campaign', 'Hi', 'Body', 24, :t, :t, 'active', 2, :t, :t, :u)",
            "INSERT INTO campaign_matrix (_id, campaign_id, user_id, mailbox_id, total_sent, "
            "total_delivered, total_opened, open_rate, created_at, last_updated) VALUES (:m, "
            ":cid, :u, :b, 2, 2, 1, 50.0, :t, :t)",
            "INSERT INTO email_tracking (_id, campaign_id, user_id, mailbox_id, recipient_email, "
            "merge_variables, status, sent_at, delivered_at, opened_at, created_at, updated_at) "
            "VALUES (:opened, :cid, :u, :b, 'a@example.com', '{}', 'sent', :t, :t, :t, :t, :t)",
            "INSERT INTO email_tracking (_id, campaign_id, user_id, mailbox_id, recipient_email, "
            "merge_variables, status, sent_at, delivered_at, created_at, updated_at) VALUES "
            "(:unopened, :cid, :u, :b, 'b@example.com', '{}', 'sent', :t, :t, :t, :t)",
        ]
        values = {
            "u": USER, "b": BOX, "c": CAMPAIGN, "cid": CAMPAIGN_ID, "t": at, "yes": True,
            "m": "0123456789abcdef0123456c", "opened": OPENED, "unopened": UNOPENED,
        }  # fmt: skip
        async with store.engine.begin() as connection:
            for row in rows:
                await connection.execute(text(row), values)
        await upgrade(store.engine)
        assert await store.schema_version() == head_revision()

        campaign = await store.get_campaign(USER, CAMPAIGN_ID)
        assert campaign is not None and campaign.steps == [1] and campaign.campaign_steps == []
        # Every moment the old rows held has its event now (0023), numbered after nothing,
        # marked as history; so the counters rebuilt from the log are the ones kept.
        log = await store.list_event_log(USER, EventLogQuery(limit=10))
        assert [(e.seq, e.record_id, e.type, e.machine, e.occurred_at) for e in log] == [
            (1, OPENED, EventType.SENT, False, now),
            (2, UNOPENED, EventType.SENT, False, now),
            (3, OPENED, EventType.OPEN, True, now),
        ]
        assert all(e.backfilled for e in log) and log[2].details == {"backfilled": "opened_at"}
        rebuilt = await store.recompute_metrics(CAMPAIGN_ID, now=now)
        assert rebuilt is not None and (rebuilt.total_sent, rebuilt.total_opened) == (2, 1)
        emails = await store.sequence_emails(CAMPAIGN_ID, "a@example.com")
        assert [(e.step, e.status, e.opened_at) for e in emails] == [(1, TrackingStatus.SENT, now)]
        # Counters go on: a's second open counts nobody new; b's first open counts b.
        later = now + timedelta(hours=1)
        for record_id, expected in ((OPENED, {}), (UNOPENED, {"total_opened": 1})):
            email = await store.get_tracking(USER, record_id)
            assert email is not None
            event = EmailEvent.about(email, OPEN.type, later, details={})
            change = EventChange(firsts=OPEN.firsts_for(human=False))
            assert await store.record_event(event, change) == expected
        metrics = await store.get_metrics(USER, CAMPAIGN_ID)
        assert metrics is not None and (metrics.total_sent, metrics.total_opened) == (2, 2)
        recomputed = await store.recompute_metrics(CAMPAIGN_ID, now=later)
        assert recomputed is not None
        assert (recomputed.total_sent, recomputed.total_opened) == (2, 2)
    finally:
        await store.close()


async def test_mongodb_documents_of_an_older_layout_become_one_step_campaigns() -> None:
    from tests.support.mongo_double import mock_database

    store = MongoStore(mock_database("sequences-upgrade"))
    tracking = store.database[TRACKING]
    await tracking.create_index(
        [("campaign_id", 1), ("recipient_email", 1)], name=OLD_UNIQUE_INDEX, unique=True
    )
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    for record_id, email, opened in ((OPENED, "a@example.com", now), (UNOPENED, "b@x.org", None)):
        await tracking.insert_one(
            {
                "_id": ObjectId(record_id),
                "campaign_id": CAMPAIGN_ID,
                "user_id": ObjectId(USER),
                "mailbox_id": ObjectId(BOX),
                "recipient_email": email,
                "merge_variables": {},
                "status": "sent",
                "sent_at": now,
                "opened_at": opened,
                "created_at": now,
                "updated_at": now,
            }
        )
    await store.migrate()
    await store.migrate()  # twice: nothing changes the second time
    assert OLD_UNIQUE_INDEX not in await tracking.index_information()
    assert await tracking.count_documents({"step": 1}) == 2
    people = store.database[RECIPIENTS]
    assert await people.count_documents({"campaign_id": CAMPAIGN_ID}) == 2
    person = await people.find_one({"recipient_email": "a@example.com"})
    assert person is not None and person["opened_at"] is not None
    assert person["sent_at"] is not None and person.get("clicked_at") is None
    # Every moment the old documents held has its event now (mongo-0023), once.
    log = await store.list_event_log(USER, EventLogQuery(limit=10))
    assert [(e.seq, e.record_id, e.type, e.machine) for e in log] == [
        (1, OPENED, EventType.SENT, False),
        (2, UNOPENED, EventType.SENT, False),
        (3, OPENED, EventType.OPEN, True),
    ]
    assert all(e.backfilled and e.occurred_at == now for e in log)
