"""Upgrading keeps what is stored: data written under the first schema reads back under
the newest, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from mailramp.storage.sql import SqlStore
from mailramp.storage.sql.migrate import head_revision, upgrade

USER = "0123456789abcdef01234567"
LATER_USER = "0123456789abcdef0123456a"
BOX = "0123456789abcdef01234568"
CAMPAIGN = "0123456789abcdef01234569"
CAMPAIGN_ID = "6f1b3c1e-2d4e-4f5a-8b6c-7d8e9f0a1b2c"


async def test_data_from_the_first_schema_survives_every_upgrade(empty_database: str) -> None:
    store = SqlStore.from_url(empty_database)
    try:
        await upgrade(store.engine, "0001_initial")
        assert await store.schema_version() == "0001_initial"
        # As each backend stores times: timestamptz on PostgreSQL, naive UTC on SQLite.
        now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
        if store.backend == "sqlite":
            now = now.replace(tzinfo=None)
        async with store.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO user_information_table (_id, user_id, user_name, login_id, "
                    "created_at, updated_at, is_active) VALUES (:id, :id, 'Old', 'old', :t, :t, "
                    ":yes)"
                ),
                {"id": USER, "t": now, "yes": True},
            )
            await connection.execute(
                text(
                    "INSERT INTO user_information_table (_id, user_id, user_name, login_id, "
                    "created_at, updated_at, is_active) VALUES (:id, :id, 'Newer', 'newer', :t, "
                    ":t, :yes)"
                ),
                {"id": LATER_USER, "t": now + timedelta(days=1), "yes": True},
            )
            await connection.execute(
                text(
                    "INSERT INTO linkbox_box_table (_id, mailbox_id, user_id, email, provider, "
                    "user_profile, is_primary, is_active, status, created_at, updated_at, "
                    "daily_limit) VALUES (:id, :id, :u, 'old@example.com', 'outlook', '{}', "
                    ":yes, :yes, 'active', :t, :t, 50)"
                ),
                {"id": BOX, "u": USER, "t": now, "yes": True},
            )
            await connection.execute(
                text(
                    "INSERT INTO campaign_creation_table (_id, campaign_id, user_id, mailbox_id, "
                    "campaign_name, subject, message, duration, start_time, end_time, status, "
                    "total_recipients, created_at, updated_at, created_by) VALUES (:id, :cid, :u, "
                    ":b, 'Old campaign', 'Hi', 'Body', 24, :t, :t, 'scheduled', 5, :t, :t, :u)"
                ),
                {"id": CAMPAIGN, "cid": CAMPAIGN_ID, "u": USER, "b": BOX, "t": now},
            )
        await upgrade(store.engine)
        assert await store.schema_version() == head_revision()
        campaign = await store.get_campaign(USER, CAMPAIGN_ID)
        assert campaign is not None
        assert campaign.campaign_name == "Old campaign" and campaign.total_recipients == 5
        assert campaign.message_format == "text" and campaign.sending_window is None
        assert campaign.start_time == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
        mailbox = await store.get_mailbox(USER, BOX)
        assert mailbox is not None and mailbox.email == "old@example.com"
        assert (await store.list_suppressions(USER)).total == 0
        # The instance's earliest user became its first user and admin (0026).
        admins = [(u.login_id, u.first_user) for u in await store.list_users() if u.is_admin]
        assert admins == [("old", True)]
    finally:
        await store.close()
