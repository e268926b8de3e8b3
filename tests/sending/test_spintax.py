"""Spintax and malformed tags: each recipient gets one wording, always the same one (in the
email, its preview and its click links), and a template a sender cannot have meant is
refused naming the step, the line and the column."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailramp.campaigns.spintax import spin, template_problems
from mailramp.errors import ValidationError
from mailramp.kit.signing import TokenSigner
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.repository import RecipientQuery
from mailramp.tracking.service import Visitor
from tests.conftest import TRACKING_KEY
from tests.sending.conftest import World

WORD = st.text(alphabet="abcdefgh ", min_size=0, max_size=8)


@given(options=st.lists(WORD, min_size=2, max_size=5), seed=st.text(max_size=12))
def test_a_group_becomes_one_of_its_options_the_same_for_the_same_seed(
    options: list[str], seed: str
) -> None:
    text = "<" + "{" + "|".join(options) + "}" + ">"
    chosen = spin(text, seed)
    assert chosen[1:-1] in options
    assert spin(text, seed) == chosen


@given(text=st.text(alphabet=st.characters(blacklist_characters="{}|"), max_size=60))
def test_text_without_groups_is_left_as_it_is(text: str) -> None:
    assert spin(text, "seed") == text
    assert template_problems(text) == []


def test_css_and_stray_braces_are_text_and_nested_options_resolve() -> None:
    css = "<style>p { color: #333 } a{font-weight:bold}</style> :} { "
    assert spin(css + "{x|x}", "s") == css + "x"
    assert template_problems(css) == []
    nested = "{Hi|Hello {there|friend}} {{first_name|you}}"
    seen = {spin(nested, f"person-{n}") for n in range(200)}
    assert seen == {
        "Hi {{first_name|you}}",
        "Hello there {{first_name|you}}",
        "Hello friend {{first_name|you}}",
    }


def test_recipients_are_spread_over_the_options() -> None:
    counts = Counter(spin("{A|B|C}", f"campaign:person{n}@example.com") for n in range(3000))
    assert set(counts) == {"A", "B", "C"}
    assert all(900 <= count <= 1100 for count in counts.values()), counts


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hi {{first name}},", "line 1, column 4: '{{first name}}' is not a merge tag"),
        ("Hi\n  {{first_name},", "line 2, column 3: '{{first_name},' is not a merge tag"),
        ("Hi {{}}", "line 1, column 4: '{{}}' is not a merge tag"),
        ("ok\n\n  {Hi|Hello there", "line 3, column 3: the spintax '{Hi|Hello there' is never"),
    ],
)
def test_what_is_malformed_is_found_with_its_line_and_column(text: str, problem: str) -> None:
    (found,) = template_problems(text)
    assert str(found).startswith(problem)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("subject", "{Hi|Hello {{first_name}}", "step 1, line 1, column 1: the spintax"),
        ("message", "Dear {{ first-name }},", "step 1, line 1, column 6: '{{ first-name }}'"),
    ],
)
async def test_a_malformed_template_is_refused_naming_step_and_position(
    world: World, field: str, value: str, says: str
) -> None:
    user, mailbox = await world.sender()
    with pytest.raises(ValidationError) as refused:
        await world.campaign(user, mailbox, "email\nbo@example.com\n", **{field: value})
    assert refused.value.field == field
    assert refused.value.detail.startswith(says)
    assert (await world.campaigns.list_campaigns(user.user_id)).total == 0


HTML = (
    "<p>{Hi|Hello|Hey} {{first_name|there}},</p>"
    '<p>{<a href="https://acme.example/a">our plan</a>'
    '|<a href="https://acme.example/b">the plan</a>}</p>'
)


async def test_each_person_gets_one_wording_in_the_email_its_preview_and_its_link(
    world: World,
) -> None:
    user, mailbox = await world.sender()
    people = "".join(f"p{n}@example.com,P{n}\n" for n in range(12))
    campaign, _ = await world.campaign(
        user,
        mailbox,
        "email,first_name\n" + people,
        subject="{Quick|Short} question",
        message=HTML,
        message_format="html",
    )
    links = TrackingLinks(TokenSigner([TRACKING_KEY]), "https://t.acme.example")
    worker = world.worker(tracking=links)
    await world.run(worker, until=campaign.end_time)
    await worker.close()

    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    wordings = Counter()
    for record in records.items:
        (sent,) = world.smtp.inbox.to(record.recipient_email)
        html = sent.get_body(preferencelist=("html",)).get_content()
        greeting = re.search(r"<p>(Hi|Hello|Hey) P\d+,</p>", html)
        assert greeting is not None, html
        assert sent["Subject"] in ("Quick question", "Short question")
        wordings[greeting.group(1)] += 1

        preview = await world.sending.preview(user.user_id, campaign.campaign_id, record.id, links)
        assert preview is not None and preview.html is not None
        assert dict(preview.headers)["Subject"] == sent["Subject"]
        assert greeting.group(0) in preview.html

        # The link they got leads where its wording said.
        (click,) = re.findall(r'href="(https://t\.acme\.example/t/c/[^"]+)"', html)
        token = click.rsplit("/", 1)[1]
        chose_a = "our plan" in html
        destination = await world.tracking.click(token, Visitor(user_agent="Mozilla/5.0", ip=None))
        assert destination == f"https://acme.example/{'a' if chose_a else 'b'}"
    assert len(wordings) >= 2, wordings  # 12 people did not all get one wording
