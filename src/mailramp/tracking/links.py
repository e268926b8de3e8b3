"""Tracking in a message: the open pixel, click links, the unsubscribe link and headers.

Links are found in the campaign's template, in order; the i-th becomes `/t/c/<token(i)>`.
A click is resolved by reading the i-th link of the stored template again and filling in
the recipient's values — the destination never comes from the URL, so no token can send
anyone anywhere the message did not link to.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit

from mailramp.campaigns import templates
from mailramp.campaigns.models import Campaign, MessageFormat
from mailramp.kit.signing import Purpose, TokenSigner
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.tracking_domain import tracking_base_url

HTML_LINK = re.compile(
    r"""(?P<lead>\bhref\s*=\s*)(?P<quote>["'])(?P<url>https?://[^"'<>\s]+)(?P=quote)""",
    re.IGNORECASE,
)
TEXT_LINK = re.compile(r"""https?://[^\s<>"']+""", re.IGNORECASE)
TRAP_LINK_INDEX = 0xFFFF
"""The link index of a campaign's trap link: a click token like any other, for a link past
any message's last (tracking/classify.py)."""
TRAP_MARKUP = '<a href="{url}" style="display:none" aria-hidden="true" tabindex="-1"></a>'
"""The trap link in the HTML part: no text, not shown, not in the tab order or a screen
reader's list — nothing a person can see or follow (its cost in spam scoring:
docs/tracking.md, `bench/trap_link.py`)."""
TRAILING = ".,;:!?)]}"


def _text_url(match: re.Match[str]) -> tuple[str, str]:
    """A URL found in text, without sentence punctuation after it; and what was cut off."""
    url = match.group(0)
    stripped = url.rstrip(TRAILING)
    return stripped, url[len(stripped) :]


def template_links(campaign: Campaign) -> list[str]:
    """The links of the campaign's message, in order, as written (placeholders and all)."""
    if campaign.message_format is MessageFormat.HTML:
        return [html.unescape(match.group("url")) for match in HTML_LINK.finditer(campaign.message)]
    return [_text_url(match)[0] for match in TEXT_LINK.finditer(campaign.message)]


def click_destination(campaign: Campaign, index: int, values: dict[str, object]) -> str | None:
    """Where the index-th link of the campaign takes this recipient (http/https only)."""
    links = template_links(campaign)
    if not 0 <= index < len(links):
        return None
    url = templates.render(links[index], values, escape=lambda v: quote(v, safe="@:+,"))
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        return None
    return url


@dataclass(frozen=True)
class TrackingLinks:
    """Builds a record's tracking URLs."""

    signer: TokenSigner
    base_url: str

    def for_mailbox(self, mailbox: Mailbox) -> TrackingLinks:
        """The links of an email from `mailbox`: on its tracking domain once that is
        verified, else on the public address."""
        host = mailbox.tracking_host
        return replace(self, base_url=tracking_base_url(self.base_url, host)) if host else self

    def open_url(self, record_id: str) -> str:
        return f"{self.base_url}/t/o/{self.signer.sign(Purpose.OPEN, record_id)}"

    def click_url(self, record_id: str, index: int) -> str:
        return f"{self.base_url}/t/c/{self.signer.sign(Purpose.CLICK, record_id, index)}"

    def answer_open_url(self, answer_id: str) -> str:
        """The pixel of an answer sent from the inbox with its opens tracked."""
        return f"{self.base_url}/t/a/{self.signer.sign(Purpose.ANSWER_OPEN, answer_id)}"

    def unsubscribe_url(self, record_id: str) -> str:
        return f"{self.base_url}/t/u/{self.signer.sign(Purpose.UNSUBSCRIBE, record_id)}"

    def instrument(self, campaign: Campaign, record_id: str) -> str:
        """The campaign's template with its tracking added, still with its placeholders (to
        be rendered for the recipient): an HTML message's links rewritten, its pixel and
        unsubscribe footer; a plain-text message's unsubscribe line only."""
        body = campaign.message
        unsubscribe = self.unsubscribe_url(record_id)
        if campaign.message_format is MessageFormat.HTML:
            if campaign.track_clicks:
                counter = iter(range(10_000))
                body = HTML_LINK.sub(
                    lambda m: (
                        f"{m.group('lead')}{m.group('quote')}"
                        f"{self.click_url(record_id, next(counter))}{m.group('quote')}"
                    ),
                    body,
                )
            extra = (
                f'<p style="font-size:12px;color:#666">'
                f'<a href="{unsubscribe}">Unsubscribe</a> from these emails.</p>'
            )
            if campaign.trap_link:
                extra += TRAP_MARKUP.format(url=self.click_url(record_id, TRAP_LINK_INDEX))
            if campaign.track_opens:
                extra += (
                    f'<img src="{self.open_url(record_id)}" width="1" height="1" alt="" '
                    'style="display:none;border:0">'
                )
            closing = re.search(r"</body\s*>", body, re.IGNORECASE)
            if closing:
                return body[: closing.start()] + extra + body[closing.start() :]
            return body + extra
        # Plain text cannot carry a pixel, and its links stay as the sender wrote them (a
        # rewritten URL is what the recipient would see): only the unsubscribe line is ours.
        return body.rstrip("\n") + self.text_footer(record_id)

    def text_footer(self, record_id: str) -> str:
        """The unsubscribe line a text part ends with."""
        return f"\n\n--\nUnsubscribe: {self.unsubscribe_url(record_id)}\n"
