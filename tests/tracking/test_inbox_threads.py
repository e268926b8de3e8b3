"""The unified inbox from a real IMAP server (Dovecot on loopback), on every backend: three
people reply — one in HTML with an attachment and hostile markup, one twice, deep in a
thread — and one is out of the office; the inbox shows three threads with the right text,
the HTML made safe, the attachment downloadable; read and unread, search and filters."""

from __future__ import annotations

import base64
import re

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign
from mailramp.conversations.answers import AnswerService
from mailramp.conversations.repository import ThreadQuery
from mailramp.errors import UncertainSendError, ValidationError
from mailramp.kit.ids import new_object_id
from mailramp.kit.signing import TokenSigner
from mailramp.mailboxes.models import Mailbox
from mailramp.providers.registry import DefaultProviders
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import EmailTracking
from mailramp.tracking.repository import RecipientQuery
from mailramp.tracking.service import Visitor
from tests.conftest import TRACKING_KEY
from tests.sending.conftest import World
from tests.support.dovecot import Dovecot
from tests.tracking.test_inbox import CSV, _append, inbox_poller, reading_sender

PDF = b"%PDF-1.4\n% a deck\n"
LINKS = TrackingLinks(TokenSigner([TRACKING_KEY]), "https://t.acme.com")
"""Tracking links signed as the world's tracking service checks them."""


def _plain(sender: str, ours: str, text: str, *, message_id: str, references: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: ann@acme.com\r\nSubject: Re: Hello\r\n"
        f"Message-ID: {message_id}\r\nIn-Reply-To: {ours}\r\nReferences: {references or ours}\r\n"
        f"Date: Mon, 01 Mar 2027 10:00:00 +0000\r\n\r\n{text}\r\n"
    ).encode()


def _html_with_attachment(ours: str) -> bytes:
    html = (
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head><body>"
        "<p>Send me <b>the deck</b>, please.</p>"
        '<img src="https://tracker.example/pixel.gif" width="1" height="1">'
        '<img src="cid:logo@bob"><a href="javascript:alert(1)">click</a>'
        '<a href="https://bob.example/calendar">my calendar</a>'
        '<div style="background:url(https://tracker.example/bg.png)">sig</div></body></html>'
    )
    pdf = base64.b64encode(PDF).decode()
    return (
        "From: Bob <bob@example.com>\r\nTo: ann@acme.com\r\nSubject: Re: Hello\r\n"
        f"Message-ID: <bob-1@example.com>\r\nIn-Reply-To: {ours}\r\nReferences: {ours}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="M"\r\n\r\n'
        '--M\r\nContent-Type: multipart/alternative; boundary="A"\r\n\r\n'
        "--A\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSend me the deck, please.\r\n"
        f"--A\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--A--\r\n"
        "--M\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="deck.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--M--\r\n"
    ).encode()


async def _sent(
    world: World, dovecot: Dovecot
) -> tuple[User, Mailbox, Campaign, dict[str, EmailTracking]]:
    """A campaign to CSV's people, sent through a mailbox whose inbox mailramp reads; its
    emails by the name before the @."""
    user, mailbox = await reading_sender(world, dovecot)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.run(world.worker(), until=campaign.end_time)
    listed = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    return user, mailbox, campaign, {r.recipient_email.split("@")[0]: r for r in listed.items}


async def test_three_threads_with_the_right_text(world: World, dovecot: Dovecot) -> None:
    user, mailbox, campaign, records = await _sent(world, dovecot)
    ours = {name: record.message_id or "" for name, record in records.items()}
    _append(
        dovecot,
        _plain("Alice <alice@example.com>", ours["alice"], "Sounds good, call me Tuesday.",
               message_id="<alice-1@example.com>"),
        _html_with_attachment(ours["bob"]),
        _plain("Carol <carol@example.com>", ours["carol"],
               "Who else is on your team?\r\n\r\nOn Mon, Ann wrote:\r\n> Hello Carol",
               message_id="<carol-1@example.com>"),
        (
            "From: dave@example.com\r\nTo: ann@acme.com\r\nSubject: Automatic reply: Hello\r\n"
            f"Auto-Submitted: auto-replied\r\nMessage-ID: <dave-1@example.com>\r\n"
            f"In-Reply-To: {ours['dave']}\r\n\r\nI am away until Monday.\r\n"
        ).encode(),
    )  # fmt: skip
    poller = inbox_poller(world)
    assert await poller.poll_once() == {"reply": 3, "auto_reply": 1}
    world.clock.advance(minutes=2)
    # Carol again, deep in the thread: answering her own message, ours further back.
    _append(
        dovecot,
        _plain("Carol <carol@example.com>", "<carol-1@example.com>",
               "Also: what does it cost?", message_id="<carol-2@example.com>",
               references=f"{ours['carol']} <ann-2@acme.com> <carol-1@example.com>"),
    )  # fmt: skip
    assert await poller.poll_once() == {"reply": 1}

    inbox = world.inbox
    threads = await inbox.threads(user.user_id, ThreadQuery())
    listed = [t.recipient_email for t in threads.items]
    assert listed[0] == "carol@example.com"  # the newest message first
    assert sorted(listed[1:]) == ["alice@example.com", "bob@example.com"]  # read together
    assert threads.total == 3
    by_person = {t.recipient_email.split("@")[0]: t for t in threads.items}
    assert (by_person["carol"].messages, by_person["carol"].unread) == (2, 2)
    assert by_person["carol"].latest.text == "Also: what does it cost?"
    assert by_person["alice"].latest.text == "Sounds good, call me Tuesday."
    with_automatic = await inbox.threads(user.user_id, ThreadQuery(automatic=True))
    assert with_automatic.total == 4

    bob = await inbox.thread(user.user_id, campaign.campaign_id, records["bob"].id)
    (reply,) = bob.messages
    assert (reply.sender, reply.text) == ("Bob <bob@example.com>", "Send me the deck, please.")
    html = reply.html or ""
    assert "<b>the deck</b>" in html and 'href="https://bob.example/calendar"' in html
    for hostile in ("script", "alert", "<img", "cid:", "tracker.example", "style", "javascript"):
        assert hostile not in html, hostile
    (attachment,) = reply.attachments
    assert (attachment.filename, attachment.content_type, attachment.size, attachment.kept) == (
        "deck.pdf",
        "application/pdf",
        len(PDF),
        True,
    )
    name, content_type, file = await inbox.attachment(user.user_id, attachment.id)
    assert (name, content_type, file.data) == ("deck.pdf", "application/pdf", PDF)
    assert [e.step for e in bob.sent] == [1] and bob.sent[0].message_id == ours["bob"]

    carol = await inbox.thread(user.user_id, campaign.campaign_id, records["carol"].id)
    assert [m.text for m in carol.messages] == [
        "Who else is on your team?",
        "Also: what does it cost?",
    ]
    assert carol.messages[0].quoted == "On Mon, Ann wrote:\n> Hello Carol"
    # Opening a thread marks it read; it can be marked unread again.
    unread = await inbox.threads(user.user_id, ThreadQuery(unread=True))
    assert [t.recipient_email for t in unread.items] == ["alice@example.com"]
    assert (
        await inbox.mark_read(user.user_id, campaign.campaign_id, records["bob"].id, read=False)
        == 1
    )
    assert (await inbox.threads(user.user_id, ThreadQuery(unread=True))).total == 2

    # Search by text, address, campaign name; filter by lead status and mailbox.
    async def found(**query: object) -> list[str]:
        page = await inbox.threads(user.user_id, ThreadQuery(**query))  # type: ignore[arg-type]
        return sorted(t.recipient_email.split("@")[0] for t in page.items)

    assert await found(search="COST") == ["carol"]
    assert await found(search="bob@") == ["bob"]
    assert await found(search=campaign.campaign_name.upper()) == ["alice", "bob", "carol"]
    assert await found(search="100%_") == []
    await world.leads.set_status(
        user.user_id, campaign.campaign_id, records["alice"].id, "interested", source="inbox"
    )
    assert await found(lead_status="interested") == ["alice"]
    assert await found(mailbox_id=mailbox.mailbox_id) == ["alice", "bob", "carol"]
    assert await found(mailbox_id="0" * 24) == []
    # Read again (a crash before the inbox position was saved): nothing is kept twice.
    await poller.process(mailbox, _html_with_attachment(ours["bob"]))
    again = await inbox.thread(user.user_id, campaign.campaign_id, records["bob"].id)
    assert len(again.messages) == 1
    # Another user sees none of it.
    stranger = await world.accounts.create_user(user_name="S", login_id="s@x.example")
    assert (await inbox.threads(stranger.user_id, ThreadQuery())).total == 0


async def test_an_answer_goes_once_in_the_thread_and_its_reply_joins_it(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox, campaign, records = await _sent(world, dovecot)
    alice = records["alice"]
    _append(
        dovecot,
        _plain("Alice <alice@example.com>", alice.message_id or "",
               "Sounds good, call me Tuesday.\r\nAlice", message_id="<alice-1@example.com>"),
    )  # fmt: skip
    poller = inbox_poller(world)
    assert await poller.poll_once() == {"reply": 1}
    answers = AnswerService(
        world.store,
        world.inbox,
        world.mailboxes,
        DefaultProviders(allow_private_hosts=True),
        LINKS,
        clock=world.clock,
    )
    before = len(world.smtp.inbox.messages)
    answer_id = new_object_id()
    sent = await answers.answer(
        user.user_id, campaign.campaign_id, alice.id, "Tuesday 10:00 works.", answer_id=answer_id
    )
    assert (sent.status, sent.direction, sent.kind) == ("sent", "out", "answer")
    (arrived,) = world.smtp.inbox.messages[before:]
    message = arrived.message
    assert arrived.recipients == ["alice@example.com"] and arrived.sender == mailbox.email
    assert message["In-Reply-To"] == "<alice-1@example.com>"
    assert message["References"] == f"{alice.message_id} <alice-1@example.com>"
    assert message["Subject"] == "Re: Hello"
    assert message["Message-ID"] == sent.message_id
    assert message.get_content_type() == "text/plain" and message["List-Unsubscribe"] is None
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith("Tuesday 10:00 works.\n\nOn Mon, 01 Mar 2027 10:00:00 +0000, Alice")
    assert "> Sounds good, call me Tuesday.\n> Alice" in body
    assert "/t/o/" not in body and "/t/c/" not in body  # no tracking
    # Asked again (a double click): the same answer, nothing sent twice.
    again = await answers.answer(
        user.user_id, campaign.campaign_id, alice.id, "Tuesday 10:00 works.", answer_id=answer_id
    )
    assert again.id == sent.id and len(world.smtp.inbox.messages) == before + 1
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert metrics.total_sent == 5  # an answer is not a campaign email

    # Alice answers the answer, naming only it: her reply joins the thread.
    world.clock.advance(minutes=5)
    _append(
        dovecot,
        _plain("Alice <alice@example.com>", sent.message_id or "", "Great, talk then.",
               message_id="<alice-2@example.com>"),
    )  # fmt: skip
    assert await poller.poll_once() == {"reply": 1}
    thread = await world.inbox.thread(user.user_id, campaign.campaign_id, alice.id)
    assert [(m.direction, m.text) for m in thread.messages] == [
        ("in", "Sounds good, call me Tuesday.\nAlice"),
        ("out", "Tuesday 10:00 works."),
        ("in", "Great, talk then."),
    ]
    # Asked for: an answer whose opens are tracked, by a pixel of its own — never the
    # campaign's counters.
    tracked = await answers.answer(
        user.user_id, campaign.campaign_id, alice.id, "Agenda attached.", track_opens=True
    )
    html = world.smtp.inbox.messages[-1].message.get_body(preferencelist=("html",))
    assert tracked.track_opens and html is not None
    (token,) = re.findall(r"https://t\.acme\.com/t/a/([\w-]+)", html.get_content())
    browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0"
    assert await world.tracking.answer_open(token, Visitor(browser, "203.0.113.7"))
    assert not await world.tracking.answer_open(token[:-2] + "xx", Visitor(browser, None))
    opened = await world.inbox.thread(user.user_id, campaign.campaign_id, alice.id)
    last = opened.messages[-1]
    assert (last.opened_at, last.human_opened_at) == (world.clock(), world.clock())
    assert opened.messages[1].opened_at is None  # the untracked answer has no pixel
    after = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert after.total_opened == metrics.total_opened
    # A copy of the answer in the inbox (a Bcc to self) is not a reply.
    _append(dovecot, message.as_bytes())
    world.clock.advance(minutes=2)
    assert await poller.poll_once() == {"unrelated": 1}


class _BrokenMidway:
    """A provider whose connection breaks while the message is handed over."""

    def __init__(self, *_: object) -> None:
        self.sends = 0

    async def send(self, message: object, *, sender: str, recipient: str) -> None:
        self.sends += 1
        raise UncertainSendError("the connection closed after DATA")

    async def close(self) -> None:
        pass


async def test_an_answer_that_may_have_left_is_never_sent_again(
    world: World, dovecot: Dovecot
) -> None:
    user, mailbox = await reading_sender(world, dovecot)
    campaign, _ = await world.campaign(user, mailbox, CSV, duration=1)
    await world.run(world.worker(), until=campaign.end_time)
    bob = next(
        r
        for r in (
            await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
        ).items
        if r.recipient_email == "bob@example.com"
    )
    broken = _BrokenMidway()
    answers = AnswerService(
        world.store, world.inbox, world.mailboxes, lambda *_: broken, LINKS, clock=world.clock
    )
    answer_id = new_object_id()
    first = await answers.answer(
        user.user_id, campaign.campaign_id, bob.id, "Following up.", answer_id=answer_id
    )
    assert (first.status, first.error) == ("uncertain", "the connection closed after DATA")
    assert first.references == [bob.message_id] and first.subject == "Re: " + campaign.campaign_name
    again = await answers.answer(
        user.user_id, campaign.campaign_id, bob.id, "Following up.", answer_id=answer_id
    )
    assert (again.status, broken.sends) == ("uncertain", 1)
    refused = None
    try:
        await answers.answer(user.user_id, campaign.campaign_id, bob.id, "   ")
    except ValidationError as error:
        refused = error
    assert refused is not None and refused.field == "text"
