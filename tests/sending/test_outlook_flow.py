"""An Outlook mailbox from link to reply: linked by OAuth against the Microsoft identity
stand-in, sending and reading its inbox through the Graph stand-in (which accepts the
tokens the identity stand-in issued), with token refresh and a revoked grant (the steps
it shares with the Gmail flow are in oauth_flow)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailramp.kit.secrets import SecretBox
from mailramp.tracking.models import TrackingStatus
from tests.sending.conftest import World
from tests.sending.oauth_flow import OAuthMailboxes, issued_by, started, the_runtime_sends_and_reads
from tests.support.graph_server import GraphServer
from tests.support.oauth_servers import MicrosoftStandIn

EMAIL = "ann@contoso.com"


@pytest.fixture
def microsoft() -> Iterator[MicrosoftStandIn]:
    yield from started(MicrosoftStandIn(client_id="ms-client", client_secret="ms-client-secret"))


@pytest.fixture
def graph(microsoft: MicrosoftStandIn) -> Iterator[GraphServer]:
    profile = {"displayName": "Ann", "mail": EMAIL, "userPrincipalName": EMAIL}
    yield from started(
        GraphServer(tokens=set(), accepts=issued_by(microsoft, EMAIL), profile=profile)
    )


@pytest.fixture
def outlook(
    world: World, secret_box: SecretBox, microsoft: MicrosoftStandIn, graph: GraphServer
) -> OAuthMailboxes:
    return OAuthMailboxes(world, secret_box, microsoft, graph, provider="outlook", email=EMAIL)


async def test_an_outlook_mailbox_sends_refreshes_reads_replies_and_stops_when_revoked(
    world: World, outlook: OAuthMailboxes, graph: GraphServer
) -> None:
    async with outlook.linked(user_name="Ann", login_id="ann-outlook") as linked:
        # A campaign of three, sent through Graph as MIME.
        sent = await outlook.send_a_campaign_of_three(linked)

        before, after, _ = await outlook.an_expired_token_is_refreshed(linked)
        # Microsoft rotates refresh tokens; the new one is stored.
        assert after.refresh_token is not None and before.refresh_token is not None
        assert after.refresh_token.get_secret_value() != before.refresh_token.get_secret_value()

        # Before the stored token expires (less than two minutes left), it is refreshed first.
        refreshes = outlook.refreshes()
        stored = await world.mailboxes.get_mailbox(linked.user.user_id, linked.mailbox.id)
        assert stored.token_expires_at is not None
        world.clock.now = stored.token_expires_at - timedelta(seconds=60)
        frank = await outlook.campaign_to(linked, "email\nfrank@example.com\n", duration=0.1)
        assert len(graph.sent) == 5
        assert len(graph.seen("/me/sendMail")) == 6  # no 401 this time
        assert outlook.refreshes() == refreshes + 1
        assert [r.status for r in await outlook.records(linked, frank)] == [TrackingStatus.SENT]

        # A reply and a bounce arrive in the inbox, read through Graph.
        await outlook.a_reply_and_a_bounce_are_read(sent)
        # Bob's reply answered from the inbox, through Graph, in his thread.
        await outlook.bob_is_answered_from_the_inbox(linked, sent["bob@example.com"])

        await outlook.revoking_the_grant_stops_the_mailbox(linked)
        assert len(graph.sent) == 6


async def test_a_long_graph_throttle_retries_when_graph_said(outlook: OAuthMailboxes) -> None:
    async with outlook.linked(user_name="Ann", login_id="ann-throttled") as linked:
        await outlook.a_long_throttle_is_retried_when_the_api_said(linked)


async def test_the_runtime_wires_outlook_mailboxes_to_graph(
    tmp_path: Path, microsoft: MicrosoftStandIn, graph: GraphServer
) -> None:
    await the_runtime_sends_and_reads(tmp_path, microsoft, graph, provider="outlook", email=EMAIL)
