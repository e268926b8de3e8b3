"""A/B variants of a campaign's email, sent through a real SMTP server with an injected
clock, on every backend: recipients are dealt the variants in turn, each gets their
variant's words (in the email, its preview and its links), and each variant has its own
figures."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from mailramp.errors import ValidationError
from mailramp.kit.signing import TokenSigner
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.repository import RecipientQuery
from mailramp.tracking.service import Visitor
from tests.conftest import TRACKING_KEY
from tests.sending.conftest import World

PEOPLE = "email,first_name\n" + "".join(f"p{n}@example.com,P{n}\n" for n in range(10))
A = '<p>Hi {{first_name}}, see <a href="https://acme.example/a">plan A</a>.</p>'
B = '<p>Hello {{first_name}}, see <a href="https://acme.example/b">plan B</a>.</p>'


async def test_recipients_are_dealt_the_variants_and_get_their_words(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(
        user,
        mailbox,
        PEOPLE,
        subject="Plan A for {{first_name}}",
        message=A,
        message_format="html",
        variants=[{"subject": "Plan B for {{first_name}}", "message": B}],
    )
    assert [v.subject for v in campaign.wordings] == [
        "Plan A for {{first_name}}",
        "Plan B for {{first_name}}",
    ]
    page = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    dealt = {r.recipient_email: r.variant for r in page.items}
    assert Counter(dealt.values()) == {0: 5, 1: 5}
    assert [dealt[f"p{n}@example.com"] for n in range(4)] == [0, 1, 0, 1]  # in turn

    links = TrackingLinks(TokenSigner([TRACKING_KEY]), "https://t.acme.example")
    worker = world.worker(tracking=links)
    await world.run(worker, until=campaign.end_time)
    await worker.close()
    for record in page.items:
        (sent,) = world.smtp.inbox.to(record.recipient_email)
        letter = "AB"[record.variant]
        name = record.merge_variables["first_name"]
        assert sent["Subject"] == f"Plan {letter} for {name}"
        html = sent.get_body(preferencelist=("html",)).get_content()
        (click,) = re.findall(r'href="(https://t\.acme\.example/t/c/[^"]+)"', html)
        where = await world.tracking.click(
            click.rsplit("/", 1)[1], Visitor(user_agent="Mozilla/5.0 (X11) Firefox/120", ip=None)
        )
        assert where == f"https://acme.example/{letter.lower()}"
        preview = await world.sending.preview(user.user_id, campaign.campaign_id, record.id, links)
        assert preview is not None and dict(preview.headers)["Subject"] == sent["Subject"]

    first_b = next(r for r in page.items if r.variant == 1)
    await world.tracking.mark_replied(user.user_id, campaign.campaign_id, first_b.id)
    figures = await world.campaigns.variant_figures(user.user_id, campaign.campaign_id)
    assert [f.letter for f in figures] == ["A", "B"]
    a, b = ({x.key: x for x in f.figures} for f in figures)
    assert (a["sent"].count, b["sent"].count) == (5, 5)
    assert (a["replied"].count, b["replied"].count) == (0, 1)
    assert (a["replied"].rate, b["replied"].rate) == (0.0, 20.0)
    # Each link was followed once (by a person, or counted as a machine when it came within
    # seconds of its send).
    clicks = [f["clicked"].count + (f["clicked"].machines or 0) for f in (a, b)]
    assert clicks == [5, 5]


@pytest.mark.parametrize(
    ("variants", "says"),
    [
        (
            [{"subject": "Hi", "message": "Dear {{first name}}"}],
            "step 1, variant B, message, line 1, column 6: '{{first name}}' is not a merge tag",
        ),
        (
            [{"subject": "ok", "message": "ok"}, {"subject": "{Hi|Hey", "message": "ok"}],
            "step 1, variant C, subject, line 1, column 1: the spintax '{Hi|Hey' is never closed",
        ),
        (
            [{"subject": "x", "message": "y"}] * 5,
            "List should have at most 4 items",
        ),
    ],
)
async def test_a_wrong_variant_is_refused_naming_it(
    world: World, variants: list[dict[str, str]], says: str
) -> None:
    user, mailbox = await world.sender()
    with pytest.raises(ValidationError) as refused:
        await world.campaign(user, mailbox, PEOPLE, variants=variants)
    assert refused.value.field == "variants"
    assert says in refused.value.detail
    assert (await world.campaigns.list_campaigns(user.user_id)).total == 0


async def test_a_variant_needs_its_merge_values_in_every_row(world: World) -> None:
    user, mailbox = await world.sender()
    with pytest.raises(ValidationError) as refused:
        await world.campaign(
            user,
            mailbox,
            "email,first_name\nann@example.com,Ann\n",
            variants=[{"subject": "Hi {{company}}", "message": "Hello"}],
        )
    assert refused.value.detail.startswith("the variable {{company}} has no column in the file")
