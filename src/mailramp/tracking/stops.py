"""Stopping a whole company when one of its people answers (a campaign option).

In B2B outreach several people of one company are often on a list; once one of them
answers, emailing their colleagues the same pitch looks careless. With the campaign's
`stop_company_on_reply`, a person's reply stops everyone else at the same email domain who
is still waiting: their unsent emails are stopped and a `stopped` event says why.

An address at a mail provider anyone can sign up to (Gmail, Outlook.com, Yahoo, iCloud…)
says nothing about the company: a reply from one never stops the others.
"""

from __future__ import annotations

from datetime import datetime

from mailramp.campaigns.models import Campaign
from mailramp.tracking.events import STOPPED
from mailramp.tracking.models import UNSENT_STATUSES, EmailEvent, EmailTracking
from mailramp.tracking.repository import EventChange, RecipientQuery, TrackingRepository

PUBLIC_MAIL_DOMAINS = frozenset(
    {
        # Google, Microsoft, Yahoo, Apple, AOL
        "gmail.com", "googlemail.com",
        "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de",
        "hotmail.it", "hotmail.es", "live.com", "live.co.uk", "live.fr", "msn.com",
        "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it",
        "yahoo.co.jp", "yahoo.com.br", "ymail.com", "rocketmail.com",
        "icloud.com", "me.com", "mac.com",
        "aol.com", "aim.com",
        # Privacy and independent providers
        "proton.me", "protonmail.com", "pm.me", "tutanota.com", "tuta.io", "fastmail.com",
        "zoho.com", "zohomail.com", "mail.com", "hey.com",
        # Europe
        "gmx.com", "gmx.de", "gmx.net", "gmx.at", "web.de", "t-online.de", "freenet.de",
        "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it",
        "virgilio.it", "seznam.cz", "wp.pl", "onet.pl", "o2.pl", "interia.pl",
        "btinternet.com", "sky.com", "virginmedia.com",
        # Russia, Asia, Latin America
        "mail.ru", "yandex.ru", "yandex.com", "rambler.ru",
        "qq.com", "163.com", "126.com", "sina.com", "naver.com", "daum.net", "hanmail.net",
        "rediffmail.com", "uol.com.br", "bol.com.br",
    }
)  # fmt: skip
"""Domains of mail providers anyone can sign up to: an address there is a person, not a
company."""


def company_domain(email: str) -> str | None:
    """The company an address belongs to (its domain), or None for a public provider's."""
    domain = email.rsplit("@", 1)[-1].lower()
    return None if domain in PUBLIC_MAIL_DOMAINS else domain


async def stop_company(
    store: TrackingRepository, campaign: Campaign, replied: EmailTracking, *, now: datetime
) -> list[str]:
    """Stop the colleagues of `replied` (same company domain, same campaign) still waiting,
    when the campaign says to; returns their addresses."""
    domain = company_domain(replied.recipient_email)
    if not campaign.stop_company_on_reply or domain is None:
        return []
    colleagues: dict[str, EmailTracking] = {}
    offset = 0
    while True:  # every address containing "@domain" with an email unsent, read first
        query = RecipientQuery(campaign.campaign_id, search=f"@{domain}", offset=offset, limit=PAGE)
        page = await store.list_tracking(campaign.user_id, query)
        for record in page.items:
            email = record.recipient_email
            if (
                email != replied.recipient_email
                and email.endswith(f"@{domain}")
                and record.status in UNSENT_STATUSES
            ):
                colleagues.setdefault(email, record)  # one event per person
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    details = {"source": "company_reply", "because": replied.recipient_email}
    change = EventChange(firsts={}, stops_sequence=True)
    for record in colleagues.values():
        await store.record_event(
            EmailEvent.about(record, STOPPED.type, now, details=details), change
        )
    return list(colleagues)


PAGE = 500
