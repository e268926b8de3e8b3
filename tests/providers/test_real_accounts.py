"""The Graph and Gmail providers against real Microsoft and Google accounts.

Deselected (not skipped) unless the account's refresh token is in the environment; see
docs/oauth.md "Running the provider tests against real accounts":

    MAILRAMP_TEST_MICROSOFT_REFRESH_TOKEN   with MAILRAMP_MICROSOFT_CLIENT_ID / _SECRET
    MAILRAMP_TEST_GOOGLE_REFRESH_TOKEN      with MAILRAMP_GOOGLE_CLIENT_ID / _SECRET

(`python -m tests.support.real_token outlook|gmail` prints one.) Each run refreshes the
token, runs "Test connection", sends one message from the account to itself with
mailramp's headers, reads back the Message-ID the provider used and finds the message in
the inbox through the same inbox reader the poller uses.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from email import message_from_bytes
from email.policy import compat32

import pytest

from mailramp.config import Settings
from mailramp.kit.clock import utc_now
from mailramp.mailboxes.models import Provider
from mailramp.oauth.clients import OAuthClient, endpoints_from_settings
from mailramp.providers.gmail import GmailClient, GmailProvider
from mailramp.providers.graph import GraphClient, GraphProvider
from tests.support.provider_mail import UNSUBSCRIBE, campaign_message

REFRESH_TOKENS = {
    Provider.OUTLOOK: "MAILRAMP_TEST_MICROSOFT_REFRESH_TOKEN",
    Provider.GMAIL: "MAILRAMP_TEST_GOOGLE_REFRESH_TOKEN",
}
INBOX_WAIT_SECONDS = 120


class RefreshingTokens:
    """A TokenSource on a refresh token: a new access token first and on demand; a
    rotated refresh token is kept in memory only."""

    def __init__(self, client: OAuthClient, refresh_token: str) -> None:
        self._client = client
        self._refresh_token = refresh_token
        self._access_token: str | None = None

    async def access_token(self, *, force_refresh: bool = False) -> str:
        if self._access_token is None or force_refresh:
            tokens = await self._client.refresh(self._refresh_token, now=utc_now())
            self._access_token = tokens.access_token.get_secret_value()
            if tokens.refresh_token is not None:
                self._refresh_token = tokens.refresh_token.get_secret_value()
        return self._access_token


async def _address(client: OAuthClient, tokens: RefreshingTokens) -> str:
    profile = await client.profile(await tokens.access_token())
    for name in ("mail", "userPrincipalName", "email"):
        if isinstance(profile.get(name), str) and profile[name]:
            return str(profile[name])
    raise AssertionError(f"the profile names no address: {sorted(profile)}")


async def _sent_message_id(mailbox: GraphProvider | GmailProvider, ours: str) -> str:
    """The Message-ID the provider sent under, as the worker reads it back."""
    for _ in range(30):
        if isinstance(mailbox, GraphProvider):
            found = await mailbox.find_sent_message_id(ours)
        else:
            assert mailbox.last_message_id is not None
            found = await mailbox.sent_message_id(mailbox.last_message_id)
        if found is not None:
            return found
        await asyncio.sleep(2)
    raise AssertionError("the sent message never appeared in Sent Items")


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param(p, marks=pytest.mark.real_service(variable), id=p.value)
        for p, variable in REFRESH_TOKENS.items()
    ],
)
async def test_send_to_self_and_find_it_in_the_inbox(provider: Provider) -> None:
    settings = Settings()
    client = OAuthClient(endpoints_from_settings(settings)[provider])
    tokens = RefreshingTokens(client, os.environ[REFRESH_TOKENS[provider]])
    address = await _address(client, tokens)
    mailbox: GraphProvider | GmailProvider
    if provider is Provider.OUTLOOK:
        mailbox = GraphProvider(address, GraphClient(tokens, base_url=settings.graph_url))
    else:
        mailbox = GmailProvider(address, GmailClient(tokens, base_url=settings.gmail_url))
    try:
        await mailbox.check()

        record_id = f"real-{uuid.uuid4().hex}"
        message = campaign_message(record_id, address, sender=address)
        message.replace_header("Subject", f"mailramp provider test {record_id}")
        ours = str(message["Message-ID"])
        await mailbox.send(message, sender=address, recipient=address)
        sent_id = await _sent_message_id(mailbox, ours)
        if provider is Provider.OUTLOOK:
            assert sent_id == ours  # Graph keeps the Message-ID of a MIME send

        inbox = mailbox.inbox(settle_seconds=0, first_look_back=timedelta(minutes=15))
        arrived = None
        for _ in range(INBOX_WAIT_SECONDS // 5):
            batch = await inbox.fetch_new(uid_validity=None, last_uid=None)
            parsed = [message_from_bytes(raw, policy=compat32) for _, raw in batch.messages]
            arrived = next((m for m in parsed if m["Message-ID"] == sent_id), None)
            if arrived is not None:
                break
            await asyncio.sleep(5)
        assert arrived is not None, f"{sent_id} did not reach the inbox in {INBOX_WAIT_SECONDS} s"
        assert arrived["Subject"] == f"mailramp provider test {record_id}"
        if provider is Provider.OUTLOOK:  # Graph's inbox reader has every header
            assert arrived["List-Unsubscribe"] == UNSUBSCRIBE
            assert arrived["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        else:  # Gmail's reads a few: ask for the list headers of what Gmail sent
            assert isinstance(mailbox, GmailProvider) and mailbox.last_message_id is not None
            response = await mailbox.client.read(
                f"/messages/{mailbox.last_message_id}",
                params={
                    "format": "metadata",
                    "metadataHeaders": ["List-Unsubscribe", "List-Unsubscribe-Post"],
                },
            )
            headers = {
                h["name"].lower(): h["value"]
                for h in mailbox.client.json_of(response)["payload"]["headers"]
            }
            assert headers["list-unsubscribe"] == UNSUBSCRIBE
            assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
    finally:
        await mailbox.close()
