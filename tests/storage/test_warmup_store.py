"""The warm-up pool's storage on every backend: who is in the pool, planned emails claimed
once each, what a receiving mailbox still has to find, what it found, and warm-up emails
counted against the sender's daily limit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mailramp.deliverability.models import Placement, WarmupEmail, WarmupStatus
from mailramp.kit.ids import new_object_id
from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.storage import Store
from tests.conftest import Services, make_mailbox, make_user


def _email(sender: Mailbox, receiver: Mailbox, services: Services, minutes: int) -> WarmupEmail:
    email_id = new_object_id()
    now = services.clock()
    return WarmupEmail.model_validate(
        {
            "_id": email_id,
            "user_id": sender.user_id,
            "mailbox_id": sender.id,
            "to_mailbox_id": receiver.id,
            "to_user_id": receiver.user_id,
            "thread_id": email_id,
            "message_id": f"<{email_id}@x.example>",
            "subject": "Notes from today",
            "body": "Hi",
            "planned_at": now + timedelta(minutes=minutes),
            "created_at": now,
            "updated_at": now,
        }
    )


async def test_the_pool_plans_claims_once_finds_and_counts(
    services: Services, store: Store
) -> None:
    ann, bob = await make_user(services), await make_user(services)
    sender, receiver = await make_mailbox(services, ann), await make_mailbox(services, bob)
    outsider = await make_mailbox(services, bob)
    for box in (sender, receiver):
        await store.update_mailbox(box.user_id, box.id, {"warmup_enabled": True})
    now = services.clock()

    assert {box.id for box in await store.warmup_pool()} == {sender.id, receiver.id}
    assert outsider.id not in {box.id for box in await store.warmup_pool()}

    due, later = _email(sender, receiver, services, -5), _email(sender, receiver, services, 30)
    await store.insert_warmup_emails([due, later])
    hour = timedelta(hours=1)
    assert await store.warmup_openings_between(sender.id, now - hour, now + hour) == 2
    assert await store.warmup_openings_between(sender.id, now - hour, now) == 1  # `later` not

    # Two claimers at once: the due email goes to one of them only.
    first, second = await asyncio.gather(
        store.claim_warmup_emails(now, limit=10), store.claim_warmup_emails(now, limit=10)
    )
    assert sorted(len(batch) for batch in (first, second)) == [0, 1]
    (claimed,) = first or second
    assert (claimed.id, claimed.status, claimed.attempts) == (due.id, WarmupStatus.SENDING, 1)

    made_before = await store.made_since(sender.id, now - timedelta(hours=1))
    await store.finish_warmup_email(due.id, status=WarmupStatus.SENT, at=now)
    assert await store.made_since(sender.id, now - timedelta(hours=1)) == made_before + 1
    assert [e.id for e in await store.warmup_emails_to_find(receiver.id, sent_since=now)] == [
        due.id
    ]
    later_on = now + timedelta(seconds=1)
    assert await store.warmup_emails_to_find(receiver.id, sent_since=later_on) == []

    await store.update_warmup_email(
        due.id, {"found_at": now, "placement": Placement.SPAM, "rescued_at": now, "read_at": now}
    )
    assert await store.warmup_emails_to_find(receiver.id, sent_since=now) == []
    found = await store.get_warmup_email(due.id)
    assert found is not None and (found.placement, found.rescued_at) == (Placement.SPAM, now)
    sent = await store.warmup_sent_since(sender.id, now - timedelta(days=1))
    assert [(s.sent_at, s.placement) for s in sent] == [(now, Placement.SPAM)]
    waiting = await store.get_warmup_email(later.id)
    assert waiting is not None and waiting.status is WarmupStatus.PLANNED


async def test_a_mailboxs_days_are_stored_and_replaced_by_day(
    services: Services, store: Store
) -> None:
    user = await make_user(services)
    mailbox = await make_mailbox(services, user)
    now = services.clock()

    def day(key: str, **counts: int) -> MailboxDay:
        return MailboxDay.model_validate(
            {
                "_id": new_object_id(),
                "mailbox_id": mailbox.id,
                "user_id": user.user_id,
                "day": key,
                "updated_at": now,
                **counts,
            }
        )

    await store.put_mailbox_days([day("2027-03-02", campaign_sent=5), day("2027-03-01", bounced=1)])
    first = await store.mailbox_days(mailbox.id)
    await store.put_mailbox_days([day("2027-03-02", campaign_sent=7, warmup_inbox=3)])

    again = await store.mailbox_days(mailbox.id)
    assert [(d.day, d.campaign_sent, d.bounced, d.warmup_inbox) for d in again] == [
        ("2027-03-01", 0, 1, 0),
        ("2027-03-02", 7, 0, 3),
    ]
    assert again[1].id == first[1].id  # replaced in place, not added
    assert [d.day for d in await store.mailbox_days(mailbox.id, since="2027-03-02")] == [
        "2027-03-02"
    ]
