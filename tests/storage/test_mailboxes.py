"""Mailboxes on every backend: linking, the primary invariant, status, unlinking, scoping."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from mailramp.errors import ConflictError, DuplicateError, NotFoundError, ValidationError
from mailramp.mailboxes.models import DnsCheck, Mailbox, Verdict
from mailramp.storage import Store
from tests.conftest import Services, make_campaign, make_mailbox, make_user


def primaries(boxes: list[Mailbox]) -> list[str]:
    return [box.mailbox_id for box in boxes if box.is_primary]


async def test_link_mailbox_as_in_the_schema_example(services: Services) -> None:
    user = await make_user(services)
    mailbox = await services.mailboxes.create_mailbox(
        user.user_id, email="Mailbox@Example.com", access_token="token_here", provider="outlook"
    )
    assert mailbox.mailbox_id == mailbox.id and len(mailbox.id) == 24
    assert mailbox.user_id == user.user_id
    assert mailbox.email == "mailbox@example.com"
    assert mailbox.provider == "outlook"
    assert mailbox.is_primary is True
    assert mailbox.is_active is True and mailbox.status == "active"
    assert mailbox.has_access_token and not mailbox.has_password
    assert mailbox.daily_limit == 50
    assert await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id) == mailbox


async def test_secrets_never_appear_in_models(services: Services) -> None:
    user = await make_user(services)
    mailbox = await make_mailbox(
        services,
        user,
        provider="smtp",
        smtp_host="smtp.example.com",
        smtp_port=587,
        smtp_security="starttls",
        password="hunter2-smtp-secret",
        access_token=None,
    )
    dumped = mailbox.model_dump_json()
    for text in (dumped, repr(mailbox), str(mailbox)):
        assert "hunter2" not in text
        assert "enc1:" not in text
    assert "password" not in mailbox.model_dump()
    credentials = await services.mailboxes.credentials(user.user_id, mailbox.mailbox_id)
    assert credentials.password is not None
    assert credentials.password.get_secret_value() == "hunter2-smtp-secret"
    assert "hunter2" not in repr(credentials)


async def test_first_mailbox_is_primary_and_set_primary_moves_it(services: Services) -> None:
    user = await make_user(services)
    first = await make_mailbox(services, user)
    second = await make_mailbox(services, user)
    third = await make_mailbox(services, user)
    assert first.is_primary and not second.is_primary and not third.is_primary

    chosen = await services.mailboxes.set_primary(user.user_id, third.mailbox_id)
    assert chosen.is_primary
    listed = await services.mailboxes.list_mailboxes(user.user_id)
    assert primaries(listed) == [third.mailbox_id]
    assert listed[0].mailbox_id == third.mailbox_id  # primary listed first
    assert [box.mailbox_id for box in listed[1:]] == [first.mailbox_id, second.mailbox_id]


async def test_concurrent_links_leave_exactly_one_primary(services: Services) -> None:
    user = await make_user(services)
    boxes = await asyncio.gather(*(make_mailbox(services, user) for _ in range(6)))
    assert len(boxes) == 6
    listed = await services.mailboxes.list_mailboxes(user.user_id)
    assert len(listed) == 6
    assert len(primaries(listed)) == 1


async def test_unlinking_the_primary_promotes_the_oldest_other(services: Services) -> None:
    user = await make_user(services)
    first = await make_mailbox(services, user)
    second = await make_mailbox(services, user, password="pw-secret-1")
    third = await make_mailbox(services, user)
    unlinked = await services.mailboxes.unlink_mailbox(user.user_id, first.mailbox_id)
    assert unlinked.is_linked is False and unlinked.unlinked_at is not None
    assert not unlinked.is_primary and not unlinked.is_active and unlinked.status == "inactive"
    assert not unlinked.has_access_token and not unlinked.has_password
    listed = await services.mailboxes.list_mailboxes(user.user_id)
    assert [box.mailbox_id for box in listed] == [second.mailbox_id, third.mailbox_id]
    assert primaries(listed) == [second.mailbox_id]
    everything = await services.mailboxes.list_mailboxes(user.user_id, include_unlinked=True)
    assert len(everything) == 3
    with pytest.raises(NotFoundError):
        await services.mailboxes.set_primary(user.user_id, first.mailbox_id)


async def test_unlinking_the_last_mailbox_then_relinking_it(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user, email="again@example.com")
    await services.mailboxes.unlink_mailbox(user.user_id, box.mailbox_id)
    assert await services.mailboxes.list_mailboxes(user.user_id) == []
    back = await services.mailboxes.create_mailbox(
        user.user_id, email="again@example.com", provider="gmail", refresh_token="refresh-2"
    )
    assert back.mailbox_id == box.mailbox_id
    assert back.is_linked and back.is_primary and back.status == "active"
    assert back.provider == "gmail" and back.has_refresh_token and not back.has_access_token
    credentials = await services.mailboxes.credentials(user.user_id, back.mailbox_id)
    assert credentials.refresh_token is not None
    assert credentials.refresh_token.get_secret_value() == "refresh-2"


async def test_unlink_refused_while_a_campaign_uses_the_mailbox(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    campaign = await make_campaign(services, user, box, campaign_name="Busy")
    with pytest.raises(ConflictError) as caught:
        await services.mailboxes.unlink_mailbox(user.user_id, box.mailbox_id)
    assert "Busy" in str(caught.value)
    assert (await services.mailboxes.get_mailbox(user.user_id, box.mailbox_id)).is_linked
    await services.campaigns.cancel(user.user_id, campaign.campaign_id)
    assert not (await services.mailboxes.unlink_mailbox(user.user_id, box.mailbox_id)).is_linked


async def test_duplicate_mailbox_email_for_one_user_is_refused(services: Services) -> None:
    user = await make_user(services)
    other = await make_user(services)
    await make_mailbox(services, user, email="shared@example.com")
    with pytest.raises(DuplicateError) as caught:
        await make_mailbox(services, user, email="SHARED@example.com")
    assert caught.value.field == "email"
    # Another user may link the same address (the unique index is per user).
    assert (await make_mailbox(services, other, email="shared@example.com")).user_id == other.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"provider": "aol"}, "provider"),
        ({"email": "no-at-sign"}, "email"),
        ({"provider": "smtp", "password": "pw"}, "smtp_host"),
        # A relay may take mail without a login; reading its inbox needs a password.
        (
            {"provider": "smtp", "smtp_host": "smtp.example.com", "imap_host": "imap.example.com"},
            "password",
        ),
        ({"provider": "gmail", "access_token": None}, "access_token"),
        ({"daily_limit": 0}, "daily_limit"),
        ({"smtp_port": 70000}, "smtp_port"),
        ({"smtp_security": "ssl3"}, "smtp_security"),
    ],
)
async def test_bad_mailbox_input_names_the_field_and_writes_nothing(
    services: Services, fields: dict[str, object], field: str
) -> None:
    user = await make_user(services)
    with pytest.raises(ValidationError) as caught:
        await make_mailbox(services, user, **fields)
    assert caught.value.field == field, caught.value
    assert await services.mailboxes.list_mailboxes(user.user_id, include_unlinked=True) == []


async def test_mailbox_for_a_missing_or_deactivated_user(services: Services) -> None:
    with pytest.raises(NotFoundError):
        await services.mailboxes.create_mailbox(
            "0123456789abcdef01234567", email="a@example.com", provider="gmail", access_token="t"
        )
    user = await make_user(services)
    await services.accounts.deactivate_user(user.user_id)
    with pytest.raises(ConflictError):
        await make_mailbox(services, user)


async def test_status_changes_carry_a_reason(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    with pytest.raises(ValidationError) as missing_reason:
        await services.mailboxes.set_status(user.user_id, box.mailbox_id, "error")
    assert missing_reason.value.field == "reason"
    with pytest.raises(ValidationError) as unknown:
        await services.mailboxes.set_status(user.user_id, box.mailbox_id, "broken")
    assert unknown.value.field == "status" and "'error'" in str(unknown.value)
    failed = await services.mailboxes.set_status(
        user.user_id, box.mailbox_id, "error", reason="SMTP AUTH rejected (535)"
    )
    assert failed.status == "error" and failed.status_reason == "SMTP AUTH rejected (535)"
    assert failed.is_active is False and failed.can_send is False
    with pytest.raises(ConflictError) as cannot_send:
        await make_campaign(services, user, failed)
    assert "535" in str(cannot_send.value)
    healed = await services.mailboxes.set_status(user.user_id, box.mailbox_id, "active")
    assert healed.can_send and healed.status_reason is None


async def test_update_mailbox_and_mark_used(services: Services) -> None:
    user = await make_user(services)
    box = await make_mailbox(services, user)
    assert box.last_used is None
    used = await services.mailboxes.mark_used(user.user_id, box.mailbox_id)
    assert used.last_used is not None
    changed = await services.mailboxes.update_mailbox(
        user.user_id,
        box.mailbox_id,
        daily_limit=120,
        display_name="Ann from Acme",
        access_token="new-token",
    )
    assert changed.daily_limit == 120 and changed.display_name == "Ann from Acme"
    credentials = await services.mailboxes.credentials(user.user_id, box.mailbox_id)
    assert credentials.access_token is not None
    assert credentials.access_token.get_secret_value() == "new-token"
    with pytest.raises(ValidationError) as caught:
        await services.mailboxes.update_mailbox(user.user_id, box.mailbox_id, daily_limit=None)
    assert caught.value.field == "daily_limit"


async def test_user_b_cannot_touch_user_a_mailbox(services: Services) -> None:
    alice = await make_user(services)
    bob = await make_user(services)
    box = await make_mailbox(services, alice)
    await make_mailbox(services, bob)
    attempts = [
        services.mailboxes.get_mailbox(bob.user_id, box.mailbox_id),
        services.mailboxes.update_mailbox(bob.user_id, box.mailbox_id, daily_limit=5),
        services.mailboxes.set_primary(bob.user_id, box.mailbox_id),
        services.mailboxes.set_status(bob.user_id, box.mailbox_id, "inactive"),
        services.mailboxes.mark_used(bob.user_id, box.mailbox_id),
        services.mailboxes.unlink_mailbox(bob.user_id, box.mailbox_id),
        services.mailboxes.credentials(bob.user_id, box.mailbox_id),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            await attempt
    assert [b.user_id for b in await services.mailboxes.list_mailboxes(bob.user_id)] == [bob.id]
    unchanged = await services.mailboxes.get_mailbox(alice.user_id, box.mailbox_id)
    assert unchanged == box


async def test_a_tracking_domain_is_in_use_while_verified_on_a_linked_mailbox(
    services: Services,
) -> None:
    store, now = services.store, services.clock()
    user = await make_user(services)
    box = await make_mailbox(services, user)
    domain = "links.acme.example"
    assert await store.tracking_domain_in_use(domain) is False
    unchecked = {"tracking_domain": domain, "tracking_domain_checked_at": now}
    stored = await store.update_mailbox(user.id, box.id, unchecked)
    assert stored is not None and stored.tracking_domain_checked_at == now
    assert stored.tracking_host is None
    assert await store.tracking_domain_in_use(domain) is False  # kept, not verified
    verified = await store.update_mailbox(user.id, box.id, {"tracking_domain_verified_at": now})
    assert verified is not None and verified.tracking_host == domain
    assert await services.mailboxes.serves_tracking_domain(" Links.ACME.example. ") is True
    assert await store.tracking_domain_in_use("other.acme.example") is False
    await services.mailboxes.unlink_mailbox(user.user_id, box.mailbox_id)
    assert await store.tracking_domain_in_use(domain) is False


async def test_domain_checks_are_stored_and_found_due_never_checked_first(
    services: Services, store: Store
) -> None:
    user = await make_user(services)
    older, newer, never, unlinked = [await make_mailbox(services, user) for _ in range(4)]
    now = services.clock()
    checks = [{"name": "spf", "verdict": "fail", "found": "no SPF record", "record": "x. TXT y"}]
    await store.update_mailbox(
        user.user_id,
        older.mailbox_id,
        {"dns_checks": checks, "dns_checked_at": now - timedelta(days=3)},
    )
    await store.update_mailbox(
        user.user_id,
        newer.mailbox_id,
        {"dns_checked_at": now - timedelta(hours=2), "dkim_selectors": ["s1", "google"]},
    )
    await services.mailboxes.unlink_mailbox(user.user_id, unlinked.mailbox_id)

    due = await store.mailboxes_due_dns_check(now - timedelta(days=1), limit=10)

    assert [box.mailbox_id for box in due] == [never.mailbox_id, older.mailbox_id]
    assert due[1].dns_checks == [
        DnsCheck(name="spf", verdict=Verdict.FAIL, found="no SPF record", record="x. TXT y")
    ]
    assert due[1].dns_verdict is Verdict.FAIL and due[0].dns_verdict is None
    assert [box.mailbox_id for box in await store.mailboxes_due_dns_check(now, limit=1)] == [
        never.mailbox_id
    ]
    read = await services.mailboxes.get_mailbox(user.user_id, newer.mailbox_id)
    assert read.dkim_selectors == ["s1", "google"] and read.dns_checks == []
