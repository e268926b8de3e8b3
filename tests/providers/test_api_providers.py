"""What the Graph and Gmail providers must both do, each against its stand-in on loopback:
refresh an expired token once (one refresh for concurrent 401s), wait out a short
throttle and hand back a long one, keep four requests in flight at most, and say what a
refused recipient, a server error, a dropped answer and an unreachable API mean; read the
inbox through a throttle, and not at all without a read scope."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mailramp.errors import (
    MailboxUnusableError,
    PermanentSendError,
    ThrottledError,
    TransientSendError,
    UncertainSendError,
)
from tests.providers.apis import Api
from tests.support.postgres import free_port
from tests.support.provider_mail import Tokens, reply


async def test_an_expired_token_is_refreshed_once(api: Api) -> None:
    tokens = Tokens("expired", "good")
    mailbox = api.provider(tokens)
    await api.send(mailbox, "rec3")
    await mailbox.close()

    assert tokens.refreshes == 1
    assert [r.token for r in api.server.seen(api.server.send_path)] == ["expired", "good"]
    assert len(api.server.sent) == 1


async def test_concurrent_401s_share_one_refresh(api: Api) -> None:
    tokens = Tokens("expired", "good")
    mailbox = api.provider(tokens)
    await asyncio.gather(*(api.send(mailbox, f"r{n}") for n in range(8)))
    await mailbox.close()

    assert tokens.refreshes == 1
    assert len(api.server.sent) == 8


async def test_a_refused_fresh_token_means_reconnect(api: Api) -> None:
    tokens = Tokens("expired", "revoked", "never-used")
    mailbox = api.provider(tokens)
    with pytest.raises(MailboxUnusableError, match="reconnect this mailbox"):
        await api.send(mailbox, "rec4")
    await mailbox.close()

    assert tokens.refreshes == 1
    assert api.server.sent == []


@pytest.mark.parametrize(
    ("api", "status", "reason"),
    [
        ("graph", 429, None),
        ("graph", 503, None),
        ("gmail", 429, "rateLimitExceeded"),
        ("gmail", 403, "rateLimitExceeded"),
        ("gmail", 403, "userRateLimitExceeded"),
    ],
    indirect=["api"],
)
async def test_retry_after_is_waited_for(api: Api, status: int, reason: str | None) -> None:
    api.server.fail_next(api.server.send_path, status, reason=reason, retry_after=1)
    mailbox = api.provider()
    await api.send(mailbox, "rec5")
    await mailbox.close()

    throttled, retried = api.server.seen(api.server.send_path)
    assert retried.at - throttled.at >= 1.0
    assert len(api.server.sent) == 1


async def test_a_long_retry_after_is_handed_back_not_slept(api: Api) -> None:
    api.server.fail_next(api.server.send_path, 429, retry_after=120)
    mailbox = api.provider(max_wait_seconds=30)
    with pytest.raises(ThrottledError) as raised:
        await api.send(mailbox, "rec7")
    await mailbox.close()

    assert isinstance(raised.value, api.throttled_error)
    assert raised.value.retry_after == 120
    assert isinstance(raised.value, TransientSendError)
    assert len(api.server.seen(api.server.send_path)) == 1
    assert api.server.sent == []


async def test_at_most_four_requests_at_once(api: Api) -> None:
    api.server.delay_seconds = 0.05
    mailbox = api.provider()
    await asyncio.gather(*(api.send(mailbox, f"c{n}") for n in range(20)))
    await mailbox.close()

    assert len(api.server.sent) == 20
    assert api.server.max_in_flight == 4


async def test_a_refused_recipient_is_a_bounce(api: Api) -> None:
    api.server.refused_recipients.add("nobody@example.com")
    mailbox = api.provider()
    with pytest.raises(PermanentSendError, match=api.refused_recipient):
        await api.send(mailbox, "rec8", "nobody@example.com")
    await mailbox.close()


async def test_server_errors_are_transient_and_a_dropped_answer_uncertain(api: Api) -> None:
    mailbox = api.provider()
    api.server.fail_next(api.server.send_path, 500)
    with pytest.raises(TransientSendError):
        await api.send(mailbox, "rec9")
    api.server.fail_next(api.server.send_path, drop=True)
    with pytest.raises(UncertainSendError):
        await api.send(mailbox, "rec9")
    await mailbox.close()

    nobody_listens = api.provider(base_url=f"http://127.0.0.1:{free_port()}{api.server.url_path}")
    with pytest.raises(TransientSendError, match=f"cannot reach {api.name}"):
        await api.send(nobody_listens, "rec9")
    await nobody_listens.close()


async def test_reading_honours_retry_after(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sent_id = "<rec12.mailramp@example.net>"
    api.server.deliver(reply(sent_id, to=api.sender), received_at=now - timedelta(minutes=5))
    api.server.fail_next(api.inbox_path, 429, retry_after=1)
    mailbox = api.provider()
    batch = await mailbox.inbox(clock=lambda: now).fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()

    throttled, retried = api.server.seen(api.inbox_path)[:2]
    assert retried.at - throttled.at >= 1.0
    listings = [r for r in api.server.seen(api.inbox_path) if r.path.endswith(api.inbox_path)]
    assert listings == [throttled, retried]
    assert len(batch.messages) == 1


async def test_a_mailbox_without_a_read_scope_cannot_be_polled(api: Api) -> None:
    api.server.fail_next(api.inbox_path, 403, reason=api.no_read_scope)
    mailbox = api.provider()
    with pytest.raises(MailboxUnusableError, match="reconnect this mailbox"):
        await mailbox.inbox().fetch_new(uid_validity=None, last_uid=None)
    await mailbox.close()


async def test_a_shared_http_client_is_left_open(api: Api) -> None:
    async with httpx.AsyncClient() as http:
        mailbox = api.provider(http=http)
        await api.send(mailbox, "rec13")
        await mailbox.close()
        assert not http.is_closed


async def test_test_connection_reads_the_profile_of_the_mailbox_account(api: Api) -> None:
    """ "Test connection": an expired token is refreshed, the profile names the mailbox's
    own address; nothing is sent and the inbox is not read."""
    api.server.set_account(api.sender.upper())  # addresses compare without case
    tokens = Tokens("expired", "good")
    mailbox = api.provider(tokens)
    await mailbox.check()

    api.server.set_account("someone.else@example.org")
    with pytest.raises(MailboxUnusableError) as wrong:
        await mailbox.check()
    await mailbox.close()
    assert wrong.value.message == (
        f"the token opens someone.else@example.org, not {api.sender}: "
        "reconnect this mailbox with the right account"
    )
    assert tokens.refreshes == 1
    assert api.server.sent == [] and api.server.seen(api.inbox_path) == []


async def test_test_connection_with_a_revoked_grant_says_reconnect(api: Api) -> None:
    api.server.set_account(api.sender)
    mailbox = api.provider(Tokens("expired", "revoked"))
    with pytest.raises(MailboxUnusableError, match="reconnect this mailbox"):
        await mailbox.check()
    await mailbox.close()
