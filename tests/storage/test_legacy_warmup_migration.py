"""`warm_up_emails_table` → warm-up emails (mailramp migrate-legacy) on every backend:
documents whose two ends are linked mailboxes carry over with where they landed; the rest
are reported with the reason; a second run changes nothing; the originals stay as they
were; the migrated emails count in the sender's history."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import timedelta
from typing import Any

from mailramp.deliverability.models import Placement, WarmupStatus
from mailramp.kit.ids import new_object_id
from mailramp.legacy.models import LegacyCollection
from mailramp.legacy.warmup import migrate_warmup
from mailramp.mailboxes.ramp import day_key
from tests.conftest import Services, make_mailbox, make_user


async def _each(documents: Iterable[Mapping[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    for document in documents:
        yield document


async def test_legacy_warm_up_emails_migrate_once_with_a_report(services: Services) -> None:
    ann, bob = await make_user(services), await make_user(services)
    sender = await make_mailbox(services, ann, email="ann@one.example")
    receiver = await make_mailbox(services, bob, email="bob@two.example")
    # An address is found among linked mailboxes whoever owns them; an unlinked one is not.
    carl = await make_user(services)
    gone = await make_mailbox(services, carl, email="bob@two.example")
    await services.mailboxes.unlink_mailbox(carl.id, gone.mailbox_id)
    linked = await services.store.linked_mailboxes_with_email("bob@two.example")
    assert [box.id for box in linked] == [receiver.id]
    now = services.clock()
    yesterday = now - timedelta(days=1)
    spam_id, inbox_id, failed_id, reply_id = (new_object_id() for _ in range(4))
    documents: list[dict[str, Any]] = [
        {  # by address, landed in spam and was moved out, read, answered
            "_id": {"$oid": spam_id},
            "user_id": {"$oid": ann.id},
            "from_email": "ANN@one.example",
            "to_email": "bob@two.example",
            "subject": "Notes from Tuesday",
            "body": "Hi Bob, the notes.",
            "message_id": "<abc123@one.example>",
            "thread_id": "18c2f0a1b2c3d4e5",  # a Gmail thread id
            "sent_at": {"$date": yesterday.isoformat()},
            "status": "delivered",
            "landed_in": "Junk",
            "moved_to_inbox": True,
            "read": True,
            "replied": True,
        },
        {  # by mailbox ids, in the inbox (a flag, not a folder name)
            "_id": inbox_id,
            "mailbox_id": sender.mailbox_id,
            "to_mailbox_id": receiver.mailbox_id,
            "subject": "Lunch?",
            "message": "Free on Friday?",
            "sent_time": yesterday.isoformat(),
            "is_spam": False,
        },
        {  # the reply, in the same legacy thread
            "_id": reply_id,
            "mailbox_id": receiver.mailbox_id,
            "to_mailbox_id": sender.mailbox_id,
            "subject": "Re: Notes from Tuesday",
            "body": "Thanks!",
            "message_id": "def456@two.example",
            "in_reply_to": "<abc123@one.example>",
            "thread_id": "18c2f0a1b2c3d4e5",
            "sent_at": yesterday + timedelta(hours=1),
            "status": "sent",
        },
        {  # refused by the provider
            "_id": failed_id,
            "from_email": "ann@one.example",
            "to_email": "bob@two.example",
            "subject": "Order status",
            "status": "failed",
            "error": "550 mailbox unavailable",
            "created_at": yesterday,
        },
        # Not carried over, each with its reason:
        {"from_email": "ann@one.example", "to_email": "bob@two.example", "status": "sent"},
        {"_id": new_object_id(), "from_email": "ann@one.example",
         "to_email": "bob@two.example", "status": "pending"},
        {"_id": new_object_id(), "from_email": "ann@one.example",
         "to_email": "stranger@else.example", "status": "sent", "sent_at": yesterday},
        {"_id": new_object_id(), "mailbox_id": new_object_id(),
         "to_email": "bob@two.example", "status": "sent", "sent_at": yesterday},
        {"_id": new_object_id(), "from_email": "ann@one.example",
         "to_email": "ann@one.example", "status": "sent", "sent_at": yesterday},
        {"_id": new_object_id(), "user_id": bob.id, "from_email": "ann@one.example",
         "to_email": "bob@two.example", "status": "sent", "sent_at": yesterday},
        {"_id": new_object_id(), "from_email": "ann@one.example",
         "to_email": "bob@two.example", "status": "exploded"},
        {"_id": new_object_id(), "from_email": "ann@one.example",
         "to_email": "bob@two.example", "sent_at": "last Tuesday"},
    ]  # fmt: skip
    store = services.store
    await services.legacy.import_documents("warm_up_emails_table", documents[1:4])
    before = [d.document async for d in store.iter_legacy(LegacyCollection.WARM_UP_EMAILS)]

    dry = await migrate_warmup(store, _each(documents), dry_run=True, now=now)
    assert (dry.read, dry.migrated, dry.already_migrated, len(dry.skipped)) == (12, 4, 0, 8)
    assert await store.get_warmup_email(spam_id) is None  # nothing written

    report = await migrate_warmup(store, _each(documents), now=now)
    assert (report.collection, report.migrated, report.already_migrated) == (
        "warm_up_emails_table", 4, 0,
    )  # fmt: skip
    assert [s.reason for s in report.skipped] == [
        "no ObjectId _id",
        "never sent (status 'pending'): the pool plans its own",
        "the recipient stranger@else.example is not a mailbox linked here",
        f"the sender mailbox {documents[7]['mailbox_id']} is not linked here",
        "sender and recipient are the same mailbox",
        f"user {bob.id} does not own the sender mailbox ann@one.example",
        "status 'exploded' has no equivalent",
        "sent_at 'last Tuesday' is not a date",
    ]
    assert report.skipped[0].document_id == "document 5"

    spam = await store.get_warmup_email(spam_id)
    assert spam is not None
    assert (spam.user_id, spam.mailbox_id, spam.to_mailbox_id, spam.to_user_id) == (
        ann.id, sender.id, receiver.id, bob.id,
    )  # fmt: skip
    assert (spam.status, spam.sent_at, spam.placement) == (
        WarmupStatus.SENT, yesterday, Placement.SPAM,
    )  # fmt: skip
    assert spam.found_at == spam.rescued_at == spam.read_at == yesterday and spam.reply_planned
    assert (spam.message_id, spam.subject, spam.body, spam.step) == (
        "<abc123@one.example>", "Notes from Tuesday", "Hi Bob, the notes.", 0,
    )  # fmt: skip
    inbox = await store.get_warmup_email(inbox_id)
    assert inbox is not None and inbox.placement is Placement.INBOX and inbox.rescued_at is None
    assert inbox.message_id == f"<legacy-{inbox_id}@one.example>" and inbox.read_at is None
    reply = await store.get_warmup_email(reply_id)
    assert reply is not None and (reply.step, reply.thread_id) == (1, spam.thread_id)
    assert (reply.message_id, reply.in_reply_to) == ("<def456@two.example>", spam.message_id)
    assert reply.placement is None and reply.found_at is None  # where it landed is unknown
    failed = await store.get_warmup_email(failed_id)
    assert failed is not None and failed.status is WarmupStatus.FAILED
    assert (failed.sent_at, failed.last_error) == (None, "550 mailbox unavailable")

    # The sender's history counts them: two sent yesterday, one found in spam.
    await services.deliverability.roll_up()
    (day,) = [d for d in await store.mailbox_days(sender.id) if d.day == day_key(yesterday)]
    assert (day.warmup_sent, day.warmup_inbox, day.warmup_spam) == (2, 1, 1)

    again = await migrate_warmup(store, _each(documents), now=now)
    assert (again.migrated, again.already_migrated, len(again.skipped)) == (0, 4, 8)
    after = [d.document async for d in store.iter_legacy(LegacyCollection.WARM_UP_EMAILS)]
    assert after == before  # the originals are untouched
