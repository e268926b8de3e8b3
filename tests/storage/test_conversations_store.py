"""The inbox's store on every backend: a reply kept with its event (once, however often it
is recorded), threads grouped per person newest first, unread counts, filters and search,
attachments scoped to their owner."""

from __future__ import annotations

from datetime import timedelta

from mailramp.conversations.repository import ThreadQuery
from mailramp.kit.ids import new_object_id
from mailramp.storage import Store
from mailramp.tracking.events import REPLY
from mailramp.tracking.models import (
    AttachmentInfo,
    ConversationFile,
    ConversationMessage,
    EmailEvent,
    EmailTracking,
    EventType,
)
from mailramp.tracking.repository import EventChange, ReceivedMessage
from tests.conftest import Services, make_campaign, make_email, make_mailbox, make_user


async def _people(services: Services, *names: str) -> dict[str, EmailTracking]:
    user = await make_user(services)
    campaign = await make_campaign(services, user, await make_mailbox(services, user))
    now = services.clock()
    records = {
        name: make_email(
            campaign, f"{name}@example.com", message_id=f"<{name}@acme.com>", sent_at=now
        )
        for name in names
    }
    await services.store.insert_tracking(list(records.values()))
    return records


async def _reply(
    store: Store,
    record: EmailTracking,
    text: str,
    at: object,
    *,
    kind: str = "reply",
    file: bytes = b"",
) -> ConversationMessage:
    message_id = new_object_id()
    files = (
        [
            ConversationFile(
                id=new_object_id(), message_id=message_id, user_id=record.user_id, data=file
            )
        ]
        if file
        else []
    )
    message = ConversationMessage(
        id=message_id,
        user_id=record.user_id,
        mailbox_id=record.mailbox_id,
        campaign_id=record.campaign_id,
        record_id=record.id,
        recipient_email=record.recipient_email,
        direction="in",
        kind=kind,
        message_id=f"<{text[:8].replace(' ', '-')}@{record.recipient_email}>",
        sender=record.recipient_email,
        subject="Re: Hello",
        received_at=at,  # type: ignore[arg-type]
        text=text,
        attachments=[
            AttachmentInfo(
                id=f.id, filename="a.txt", content_type="text/plain", size=len(file), kept=True
            )
            for f in files
        ],
    )
    event = EmailEvent.about(record, EventType.REPLY, at, details={})  # type: ignore[arg-type]
    change = EventChange(
        firsts=REPLY.firsts_for(human=False), received=ReceivedMessage(message, files)
    )
    await store.record_event(event, change)
    return message


async def test_threads_on_every_backend(services: Services, store: Store) -> None:
    records = await _people(services, "ann", "bob", "cid")
    ann, bob, cid = records["ann"], records["bob"], records["cid"]
    user_id, now = ann.user_id, services.clock()
    first = await _reply(store, ann, "Tell me more", now, file=b"notes")
    await _reply(store, bob, "Not now", now + timedelta(minutes=1))
    await _reply(store, cid, "Away until Monday", now + timedelta(minutes=2), kind="auto_reply")
    await _reply(store, ann, "Pricing please", now + timedelta(minutes=3))
    # The same message recorded again (read twice): kept once.
    again = first.model_copy(update={"id": new_object_id()})
    await store.record_event(
        EmailEvent.about(ann, EventType.REPLY, now, details={}),
        EventChange(firsts={}, received=ReceivedMessage(again)),
    )

    inbox = services.inbox
    page = await inbox.threads(user_id, ThreadQuery())
    assert [(t.recipient_email, t.messages, t.unread) for t in page.items] == [
        ("ann@example.com", 2, 2),
        ("bob@example.com", 1, 1),
    ]
    assert page.items[0].latest.text == "Pricing please"
    assert page.items[0].campaign_name.startswith("Campaign ")
    everything = await inbox.threads(user_id, ThreadQuery(automatic=True, limit=2))
    assert (everything.total, [t.recipient_email for t in everything.items]) == (
        3,
        ["ann@example.com", "cid@example.com"],
    )
    assert (await inbox.threads(user_id, ThreadQuery(search="PRICING"))).total == 1
    assert (await inbox.threads(user_id, ThreadQuery(search="bob"))).total == 1
    assert (await inbox.threads(user_id, ThreadQuery(search="%"))).total == 0

    thread = await inbox.thread(user_id, ann.campaign_id, ann.id)
    assert [m.text for m in thread.messages] == ["Tell me more", "Pricing please"]
    assert [
        t.recipient_email for t in (await inbox.threads(user_id, ThreadQuery(unread=True))).items
    ] == ["bob@example.com"]
    (info,) = thread.messages[0].attachments
    name, _, file = await inbox.attachment(user_id, info.id)
    assert (name, file.data) == ("a.txt", b"notes")
    await services.leads.set_status(user_id, bob.campaign_id, bob.id, "lost", source="api")
    lost = await inbox.threads(user_id, ThreadQuery(lead_status="lost"))
    assert [(t.recipient_email, t.lead_status) for t in lost.items] == [("bob@example.com", "lost")]

    stranger = await make_user(services)
    assert (await inbox.threads(stranger.user_id, ThreadQuery())).total == 0
    assert await store.get_conversation_file(stranger.id, info.id) is None
