"""Each mailbox's day-by-day history, rolled up from what it sent: one row per UTC day with
its campaign emails and what became of them (bounced, complained, replied — counted on the
day the email left, so a day's rates compare like with like), its warm-up emails and where
the receiving mailboxes found them, whether a brake held it, and the daily limit its ramp allowed.

The worker rolls up the last `RECOUNT_DAYS` days of every linked mailbox now and then (a
bounce or a reply can come days after the email); older rows are final. A braked day stays
braked: the flag is set when the brake fires and a roll-up never clears it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from mailramp.deliverability.models import Placement
from mailramp.deliverability.repository import SentEmail, WarmupSent
from mailramp.mailboxes.models import Mailbox, MailboxDay
from mailramp.mailboxes.ramp import day_key, ramp_of

RECOUNT_DAYS = 30
"""How far back a roll-up counts again: late bounces, complaints and replies arrive."""


def recount_since(now: datetime) -> datetime:
    """The start of the oldest UTC day a roll-up counts again."""
    first = datetime.fromisoformat(day_key(now - timedelta(days=RECOUNT_DAYS - 1)))
    return first.replace(tzinfo=now.tzinfo)


def rolled_up(
    mailbox: Mailbox,
    sent: Iterable[SentEmail],
    stored: Sequence[MailboxDay],
    *,
    now: datetime,
    new_id: Callable[[], str],
    warmup: Iterable[WarmupSent] = (),
) -> list[MailboxDay]:
    """The mailbox's rows from `recount_since(now)` to today, counted again from `sent`
    (its campaign emails since then) and `warmup` (its warm-up emails since then, where
    they landed counted on the day they left); braked flags already stored are kept. Only
    rows that exist, or have something to say, are returned."""
    first = day_key(recount_since(now))
    today = day_key(now)
    emails: Counter[str] = Counter()
    bounced: Counter[str] = Counter()
    complained: Counter[str] = Counter()
    replied: Counter[str] = Counter()
    for email in sent:
        day = day_key(email.sent_at)
        emails[day] += 1
        bounced[day] += email.bounced
        complained[day] += email.complained
        replied[day] += email.replied
    warm: Counter[str] = Counter()
    landed: dict[Placement, Counter[str]] = {place: Counter() for place in Placement}
    for warmed in warmup:
        day = day_key(warmed.sent_at)
        warm[day] += 1
        if warmed.placement is not None:
            landed[warmed.placement][day] += 1
    old = {row.day: row for row in stored}
    held_since = day_key(mailbox.braked_at) if mailbox.braked_at else None
    recounted = {day for day in old if first <= day <= today} | set(emails) | set(warm)
    if held_since is not None:
        recounted.add(today)
    rows: dict[str, MailboxDay] = {day: row for day, row in old.items() if day < first}
    for day in sorted(recounted):
        before = old.get(day)
        rows[day] = MailboxDay.model_validate(
            {
                "_id": before.id if before else new_id(),
                "mailbox_id": mailbox.id,
                "user_id": mailbox.user_id,
                "day": day,
                "campaign_sent": emails[day],
                "bounced": bounced[day],
                "complained": complained[day],
                "replied": replied[day],
                "warmup_sent": warm[day],
                "warmup_inbox": landed[Placement.INBOX][day],
                "warmup_spam": landed[Placement.SPAM][day],
                "warmup_other": landed[Placement.OTHER][day],
                "braked": bool(before and before.braked)
                or (held_since is not None and held_since <= day),
                "updated_at": now,
            }
        )
    with_limits = _with_limits(mailbox, [rows[day] for day in sorted(rows)])
    return [row for row in with_limits if row.day >= first]


def _with_limits(mailbox: Mailbox, rows: Sequence[MailboxDay]) -> list[MailboxDay]:
    """Each row with the daily limit that applied that day: the ramp's after the good days
    before it, or the target."""
    ramp = ramp_of(mailbox)
    good = 0
    out = []
    for row in rows:
        limit = mailbox.daily_limit if ramp is None else ramp.limit(good)
        out.append(row.model_copy(update={"daily_limit": limit}))
        if row.sent > 0 and not row.braked:
            good += 1
    return out
