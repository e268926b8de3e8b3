"""The Store's own answers for what the services never ask: missing rows, stale
compare-and-set, empty input. And a check that the contract suite calls every Store method."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from mailramp.campaigns.models import CampaignStatus
from mailramp.kit.ids import new_campaign_id, new_object_id
from mailramp.legacy.models import LegacyCollection
from mailramp.storage.sql import SqlStore
from tests.conftest import Services, make_campaign, make_mailbox, make_user

MISSING = "0123456789abcdef01234567"


async def test_missing_rows_are_none(services: Services) -> None:
    store = services.store
    user = await make_user(services)
    assert await store.get_user(MISSING) is None
    assert await store.get_user_by_login_id("nobody") is None
    assert await store.get_user_by_clerk_id("user_nobody") is None
    assert await store.update_user(MISSING, {"user_name": "x"}) is None
    assert await store.get_mailbox(user.id, MISSING) is None
    assert await store.get_mailbox_by_email(user.id, "none@example.com") is None
    assert await store.update_mailbox(user.id, MISSING, {"daily_limit": 3}) is None
    assert await store.set_primary_mailbox(user.id, MISSING) is None
    assert await store.get_campaign(user.id, new_campaign_id()) is None
    known = await make_campaign(services, user, await make_mailbox(services, user))
    missing = known.model_copy(update={"campaign_id": new_campaign_id()})
    assert await store.update_campaign(missing, {"subject": "x"}) is None
    assert await store.get_metrics(user.id, new_campaign_id()) is None
    missing_campaign = new_campaign_id()
    at = services.clock()
    assert await store.increment_metrics(missing_campaign, {"total_sent": 1}, at=at) is None
    assert await store.get_tracking(user.id, MISSING) is None
    assert await store.get_legacy(LegacyCollection.EMAIL_CAMPAIGNS, user.id, MISSING) is None
    assert await store.import_legacy(LegacyCollection.EMAIL_CAMPAIGNS, []) == 0


async def test_update_campaign_is_compare_and_set_on_status(services: Services) -> None:
    user = await make_user(services)
    campaign = await make_campaign(services, user, await make_mailbox(services, user))
    read_as_active = campaign.model_copy(update={"status": CampaignStatus.ACTIVE})
    stale = await services.store.update_campaign(read_as_active, {"subject": "late"})
    assert stale is None
    fresh = await services.store.update_campaign(campaign, {"subject": "on time"})
    assert fresh is not None and fresh.subject == "on time"


async def test_replace_secret_only_when_unchanged(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    found = [item async for item in services.store.iter_mailbox_secrets()]
    assert found == [(box.id, "access_token", box.access_token)]
    assert box.access_token is not None
    assert not await services.store.replace_mailbox_secret(
        box.id, "access_token", old="enc1:stale", new="enc1:new"
    )
    assert await services.store.replace_mailbox_secret(
        box.id, "access_token", old=box.access_token, new="enc1:new"
    )
    stored = await services.store.get_mailbox(user.id, box.id)
    assert stored is not None and stored.access_token == "enc1:new"


async def test_secret_scan_pages_through_many_mailboxes(services: Services) -> None:
    user = await make_user(services)
    ids = {(await make_mailbox(services, user)).id for _ in range(7)}
    from mailramp.storage.sql import mailboxes as sql_mailboxes

    original = sql_mailboxes.SECRET_SCAN_BATCH
    sql_mailboxes.SECRET_SCAN_BATCH = 3
    try:
        seen = [mailbox_id async for mailbox_id, _, _ in services.store.iter_mailbox_secrets()]
    finally:
        sql_mailboxes.SECRET_SCAN_BATCH = original
    assert sorted(seen) == sorted(ids)


async def test_empty_and_identity_updates(services: Services) -> None:
    user = await make_user(services)
    assert await services.store.update_user(user.id, {}) == user
    box = await make_mailbox(services, user)
    assert await services.store.update_mailbox(user.id, box.id, {}) == box
    assert await services.store.insert_tracking([]) == 0
    assert len(new_object_id()) == 24


def test_the_contract_suite_calls_every_store_method() -> None:
    public = {
        name
        for name, member in inspect.getmembers(SqlStore)
        if not name.startswith("_") and inspect.isfunction(member) and name != "from_url"
    }
    called: set[str] = set()
    # The contract suite, and the sending and tracking suites that run on every backend too.
    tests = Path(__file__).parents[1]
    files = [tests / "conftest.py"]
    for folder in ("storage", "sending", "tracking"):
        files += (tests / folder).glob("*.py")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                called.add(node.attr)
    service_calls = _methods_the_services_call()
    missing = sorted(public - called - service_calls)
    assert missing == [], f"Store methods no contract test reaches: {missing}"


def _methods_the_services_call() -> set[str]:
    import mailramp

    root = Path(mailramp.__file__).parent
    names: set[str] = set()
    # Every domain module (a service may live beside others: conversations/leads.py).
    for path in (path for path in root.glob("*/*.py") if path.parent.name != "storage"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in {"_store", "_users", "_metrics", "_legacy"}
            ):
                names.add(node.attr)
    return names


async def test_inbox_checks_are_claimed_once_per_interval(services: Services) -> None:
    from datetime import timedelta

    store = services.store
    user = await make_user(services)
    # An SMTP mailbox without an IMAP host has no inbox to read.
    plain = await make_mailbox(
        services,
        user,
        provider="smtp",
        smtp_host="smtp.example.com",
        password="pw",
        access_token=None,
    )
    # Read through Graph and the Gmail API: no IMAP host needed.
    outlook = await make_mailbox(services, user)
    gmail = await make_mailbox(services, user, provider="gmail")
    with_inbox = await make_mailbox(
        services,
        user,
        provider="smtp",
        smtp_host="smtp.example.com",
        password="pw",
        imap_host="imap.example.com",
        access_token=None,
    )
    assert {m.id for m in await store.list_inbox_mailboxes()} == {
        with_inbox.id,
        outlook.id,
        gmail.id,
    }
    now = services.clock()
    assert await store.claim_inbox_check(with_inbox.id, now=now, interval=60)
    assert not await store.claim_inbox_check(
        with_inbox.id, now=now + timedelta(seconds=30), interval=60
    )
    assert await store.claim_inbox_check(
        with_inbox.id, now=now + timedelta(seconds=61), interval=60
    )
    await store.save_inbox_position(with_inbox.id, uid_validity=7, last_uid=42)
    stored = await store.get_mailbox(user.id, with_inbox.id)
    assert stored is not None
    assert (stored.imap_uid_validity, stored.imap_last_uid) == (7, 42)
    assert plain.imap_last_uid is None
