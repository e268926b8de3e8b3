"""What warm-up emails say: short, plain conversations between colleagues and
acquaintances, varied by spintax so no two read alike, with no link, no image, no tracking
and nothing a filter could recognise as warm-up. Each conversation has an opening email and
replies; which one, and which words, follow from a seed (the email's own id), so a test can
say what was sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailramp.campaigns.spintax import spin


@dataclass(frozen=True)
class Conversation:
    """An opening email (subject and body) and the replies that may follow it."""

    subject: str
    body: str
    replies: tuple[str, ...]


CONVERSATIONS = (
    Conversation(
        "{Quick|Short|Small} question about {Thursday|next week|the schedule}",
        "{Hi|Hello|Hey} {there|again},\n\n{Are we still on for|Does it still work to meet}"
        " {Thursday|next week|later this week}? {I can move things around|I'm flexible}"
        " if {needed|that helps}.\n\n{Thanks|Cheers|Best}",
        (
            "{Yes|Sure|Sounds good}, {that works for me|still on my side}. {See you then|"
            "Talk soon}!",
            "{Thanks for checking|Good that you asked}. {Could we|Can we} {push it|move it}"
            " {an hour|a little} later?",
        ),
    ),
    Conversation(
        "{Notes|A few notes|My notes} from {today|this morning|our call}",
        "{Hi|Hello},\n\n{Sharing|Here are} {a few|some} {thoughts|notes} from {today|our "
        "chat}: {the plan looks good|I think we're aligned}, and {I'll follow up|I'll come"
        " back to you} on the {open points|details} {by Friday|this week}.\n\n{Best|Thanks}",
        (
            "{Great|Perfect|Thanks}, {that matches my notes|all clear on my side}.",
            "{Thanks for the summary|Appreciated}. {One more thing|Small addition}: {let's|"
            "we should} {keep|loop} {the team|everyone} {posted|in}.",
        ),
    ),
    Conversation(
        "{Re|About} the {document|draft|proposal}",
        "{Hello|Hi},\n\n{I had a look at|I went through} the {draft|document} {yesterday|"
        "this morning}. {Overall it reads well|It's in good shape}; {just a couple of|a "
        "few} {small|minor} {comments|edits} {in the margin|on page two}.\n\n{Regards|Best"
        "|Thanks}",
        (
            "{Thanks|Thank you} for {reading it|the review}, {I'll go through your "
            "comments|I'll update it} {today|tomorrow}.",
            "{Much appreciated|Thanks a lot}! {Will send|I'll share} the {next version|"
            "update} {soon|this week}.",
        ),
    ),
    Conversation(
        "{Lunch|Coffee} {next week|on Tuesday|sometime soon}?",
        "{Hey|Hi},\n\n{It's been a while|Long time}! {Would you be up for|Fancy} {a coffee|"
        "lunch} {next week|on Tuesday}? {Any day works|I'm free most days} {after 12|in "
        "the afternoon}.\n\n{Cheers|Best}",
        (
            "{Love to|Sounds great|Happy to}! {Tuesday|Wednesday} {works|suits me} {best|well}.",
            "{Good idea|Yes please}, {let me check my calendar|I'll check my week} and {get "
            "back to you|confirm}.",
        ),
    ),
    Conversation(
        "{Update|Status} on {the order|the delivery|our project}",
        "{Hi|Hello},\n\n{Just a quick update|A short update}: {everything is on track|"
        "things are moving}, and we {expect|should have} {the next step|it} {done|ready} "
        "{by the end of the week|in a few days}.\n\n{Thanks|Best regards}",
        (
            "{Thanks for the update|Good to hear}, {keep me posted|let me know if anything"
            " changes}.",
            "{Great news|Excellent}, {thanks|thank you} for {letting me know|the heads-up}.",
        ),
    ),
    Conversation(
        "{Following up|Checking in} on {last week|our conversation}",
        "{Hi|Hello} {again|},\n\n{I wanted to|Just wanted to} {follow up|check in} on "
        "{what we discussed|our conversation} {last week|the other day}. {Any news on your"
        " side|How are things going}?\n\n{Best|All the best}",
        (
            "{Thanks for following up|Good to hear from you}! {Still working on it|Almost "
            "there}, {more soon|I'll update you shortly}.",
            "{All good here|Things are fine}, {thanks for asking|appreciate the check-in}.",
        ),
    ),
)


@dataclass(frozen=True)
class WarmupText:
    """One warm-up email's words."""

    subject: str
    body: str


def opening(seed: str) -> WarmupText:
    """The opening email of a conversation, chosen and worded by `seed`."""
    conversation = CONVERSATIONS[_index(seed, len(CONVERSATIONS))]
    return WarmupText(spin(conversation.subject, seed), spin(conversation.body, seed))


def reply(opening_seed: str, seed: str, subject: str) -> WarmupText:
    """A reply to the conversation `opening_seed` started: `Re:` its subject, worded by
    `seed`."""
    conversation = CONVERSATIONS[_index(opening_seed, len(CONVERSATIONS))]
    text = conversation.replies[_index(seed, len(conversation.replies))]
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    return WarmupText(subject, spin(text, seed))


def _index(seed: str, count: int) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % count
