""" "Test connection" for a mailbox: log in to what it sends and reads through, send nothing.

SMTP mailboxes check their SMTP server and, when they have one, their IMAP server. Outlook
and Gmail mailboxes check their API: a token that works (refreshed when due, so a revoked
grant shows up here as "reconnect this mailbox") and the account it belongs to.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mailramp.errors import ProviderError
from mailramp.mailboxes.models import Mailbox, Provider
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.mailboxes.transport import InboxFactory, ProviderFactory


@runtime_checkable
class Checkable(Protocol):
    """A provider or inbox reader that can log in without sending or reading anything."""

    async def check(self) -> None:
        """Connect and authenticate, then let go; raise ProviderError when that fails."""
        ...


async def _check(part: object) -> dict[str, object]:
    if not isinstance(part, Checkable):
        return {"ok": False, "error": f"{type(part).__name__} cannot be tested"}
    try:
        await part.check()
    except ProviderError as error:
        return {"ok": False, "error": error.message}
    return {"ok": True}


async def check_mailbox(
    mailbox: Mailbox,
    credentials: MailboxCredentials,
    *,
    providers: ProviderFactory,
    inboxes: InboxFactory,
) -> dict[str, dict[str, object]]:
    """What each part of the mailbox answered, by part: `smtp` and `imap` for SMTP
    mailboxes, `graph` for Outlook and `gmail` for Gmail (the same API sends and reads)."""
    if mailbox.provider is not Provider.SMTP:
        part = "graph" if mailbox.provider is Provider.OUTLOOK else "gmail"
        try:
            provider = providers(mailbox, credentials)
        except ProviderError as error:
            return {part: {"ok": False, "error": error.message}}
        try:
            return {part: await _check(provider)}
        finally:
            await provider.close()
    results: dict[str, dict[str, object]] = {}
    try:
        results["smtp"] = await _check(providers(mailbox, credentials))
    except ProviderError as error:
        results["smtp"] = {"ok": False, "error": error.message}
    if mailbox.imap_host:
        try:
            results["imap"] = await _check(inboxes(mailbox, credentials))
        except ProviderError as error:
            results["imap"] = {"ok": False, "error": error.message}
    return results
