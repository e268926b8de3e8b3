"""Sequences: a first email and follow-ups that stop when the person answers, through a
real SMTP server with an injected clock that moves days, on every backend."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from mailramp.kit.signing import TokenSigner
from mailramp.metrics.figures import by_key
from mailramp.sending.service import Preview
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import TrackingStatus
from mailramp.tracking.service import RecipientFilter
from tests.conftest import TRACKING_KEY
from tests.sending.conftest import World

PEOPLE = "email,first_name\n" + "".join(
    f"{name}@example.com,{name.title()}\n" for name in ("alice", "bob", "carol")
)
FOLLOW_UPS = [
    {"delay_days": 2, "message": "Hi {{first_name}}, did you see my note?"},
    {"delay_days": 3, "subject": "One last idea, {{first_name}}", "message": "Last one."},
]


def by_person(messages: list[Message]) -> dict[str, list[Message]]:
    mail: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        mail[str(message["To"])].append(message)
    return dict(mail)


async def test_follow_ups_go_in_the_thread_from_the_same_mailbox(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, report = await world.campaign(
        user, mailbox, PEOPLE, duration=24 * 7, campaign_steps=FOLLOW_UPS
    )
    assert report.accepted == 3 and report.total_recipients == 3
    assert [f.step for f in campaign.campaign_steps] == [2, 3]

    await world.run(world.worker(), until=campaign.end_time, step_minutes=60)

    mail = by_person([received.message for received in world.smtp.inbox.messages])
    assert sorted(mail) == ["alice@example.com", "bob@example.com", "carol@example.com"]
    if any(len(messages) != 3 for messages in mail.values()):  # say what became of them
        page = await world.tracking.list_recipients(
            user.user_id, campaign.campaign_id, RecipientFilter(None, None, 0, 50)
        )
        states = [
            (r.recipient_email, r.step, r.status, r.scheduled_at, r.sent_at, r.last_error)
            for r in page.items
        ]
        raise AssertionError(f"not three emails each; the records: {states}")
    for address, (first, second, third) in mail.items():
        name = address.split("@")[0].title()
        assert first["Subject"] == f"Hello {name}"
        assert first["In-Reply-To"] is None
        assert second["Subject"] == f"Re: Hello {name}"
        assert second["In-Reply-To"] == first["Message-ID"]
        assert second["References"] == first["Message-ID"]
        assert f"Hi {name}, did you see my note?" in second.get_payload(decode=True).decode()
        assert third["Subject"] == f"One last idea, {name}"  # a subject of its own: a new thread
        assert third["In-Reply-To"] is None
        assert {m["From"] for m in (first, second, third)} == {"Ann from Acme <ann@acme.com>"}
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert metrics.total_sent == 3  # people contacted, not emails
    funnel = await world.campaigns.step_figures(user.user_id, campaign.campaign_id)
    sent = [by_key(step.figures)["sent"].count for step in funnel]
    assert [step.position for step in funnel] == [1, 2, 3] and sent == [3, 3, 3]
    records = await world.store.sequence_emails(campaign.campaign_id, "alice@example.com")
    assert [(r.step, r.status) for r in records] == [
        (1, TrackingStatus.SENT),
        (2, TrackingStatus.SENT),
        (3, TrackingStatus.SENT),
    ]


async def test_the_preview_shows_each_step_in_its_thread(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(
        user, mailbox, PEOPLE, duration=24 * 7, campaign_steps=FOLLOW_UPS
    )
    await world.send_first("alice@example.com")
    (first,) = [r.message for r in world.smtp.inbox.messages]
    links = TrackingLinks(TokenSigner([TRACKING_KEY]), "https://t.acme.example")
    (alice, *_) = await world.store.step_emails(campaign.campaign_id, 1)
    assert alice.recipient_email == "alice@example.com"

    def headers(preview: Preview | None) -> dict[str, str]:
        assert preview is not None
        return dict(preview.headers)

    async def shown(record_id: str, step: int) -> Preview | None:
        return await world.sending.preview(
            user.user_id, campaign.campaign_id, record_id, links, step=step
        )

    second = await shown(alice.id, 2)
    assert second is not None and second.step == 2
    assert headers(second)["Subject"] == "Re: Hello Alice"
    assert headers(second)["In-Reply-To"] == first["Message-ID"]
    assert "Hi Alice, did you see my note?" in second.text
    third = await shown(alice.id, 3)
    assert headers(third)["Subject"] == "One last idea, Alice" and "In-Reply-To" not in headers(
        third
    )
    # Bob has had nothing yet: his step 2 answers a thread not started, so no In-Reply-To.
    bob = next(
        r
        for r in await world.store.step_emails(campaign.campaign_id, 1)
        if r.recipient_email == "bob@example.com"
    )
    bobs = await shown(bob.id, 2)
    assert headers(bobs)["Subject"] == "Re: Hello Bob" and "In-Reply-To" not in headers(bobs)
    back = await shown(bob.id, 1)
    assert back is not None and back.step == 1 and headers(back)["Subject"] == "Hello Bob"


async def test_each_recipient_gets_the_sending_window_in_their_own_time_zone(
    world: World,
) -> None:
    user, mailbox = await world.sender()
    rows = (
        "email,first_name,timezone\n"
        "kenji@example.com,Kenji,Asia/Tokyo\n"
        "lola@example.com,Lola,America/Los_Angeles\n"
        "ulla@example.com,Ulla,\n"
        "zed@example.com,Zed,Mars/Olympus\n"
    )
    window = {"days": [0, 1, 2, 3, 4], "start_hour": 9, "end_hour": 17, "timezone": "UTC"}
    campaign, report = await world.campaign(
        user,
        mailbox,
        rows,
        duration=24 * 14,
        sending_window=window,
        campaign_steps=[{"delay_days": 1, "message": "Hi again {{first_name}}"}],
    )
    assert report.accepted == 3
    ((row, value, reason),) = [(bad.row, bad.value, bad.reason) for bad in report.invalid]
    assert (row, value) == (5, "Mars/Olympus")
    assert reason == "unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Paris)"

    await world.run(world.worker(), until=campaign.end_time, step_minutes=30)

    mail = by_person([received.message for received in world.smtp.inbox.messages])
    zones = {"kenji": "Asia/Tokyo", "lola": "America/Los_Angeles", "ulla": "UTC"}
    assert sorted(mail) == sorted(f"{name}@example.com" for name in zones)
    for name, zone in zones.items():
        first, second = mail[f"{name}@example.com"]
        for email in (first, second):
            local = parsedate_to_datetime(email["Date"]).astimezone(ZoneInfo(zone))
            assert local.weekday() < 5 and 9 <= local.hour < 17, (name, local)
        gap = parsedate_to_datetime(second["Date"]) - parsedate_to_datetime(first["Date"])
        assert gap >= timedelta(days=1)
