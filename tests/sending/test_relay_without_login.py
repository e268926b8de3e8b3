"""An SMTP mailbox that sends through a relay taking mail without a login (a relay on the
operator's own network): linked without a password, it sends without AUTH; reading an
inbox over IMAP still needs a password (issue 28, item 5)."""

from __future__ import annotations

import pytest

from mailramp.errors import ValidationError
from tests.sending.conftest import World

PEOPLE = "email,first_name\nalice@example.com,Alice\nbob@example.com,Bob\n"


async def test_a_relay_mailbox_sends_without_a_login(world: World) -> None:
    user, mailbox = await world.sender(password=None, smtp_username=None)
    assert not mailbox.has_password
    campaign, report = await world.campaign(user, mailbox, PEOPLE)
    assert report.accepted == 2
    await world.send_first("alice@example.com", "bob@example.com")
    received = world.smtp.inbox.count_by_recipient()
    assert received == {"alice@example.com": 1, "bob@example.com": 1}
    assert world.smtp.inbox.logins == []  # no AUTH was even tried
    metrics = await world.metrics.get_campaign_metrics(campaign.campaign_id)
    assert metrics.total_sent == 2


async def test_reading_replies_over_imap_needs_a_password(world: World) -> None:
    with pytest.raises(ValidationError) as refused:
        await world.sender(email="cy@acme.com", password=None, imap_host="127.0.0.1")
    assert "password is required to read replies over IMAP" in refused.value.message
    _, relay = await world.sender(email="di@acme.com", password=None)
    with pytest.raises(ValidationError) as later:
        await world.mailboxes.update_mailbox(relay.user_id, relay.mailbox_id, imap_host="imap.x")
    assert later.value.field == "password"
    # Given a password with it, the inbox can be read.
    changed = await world.mailboxes.update_mailbox(
        relay.user_id, relay.mailbox_id, imap_host="imap.x", password="a password"
    )
    assert changed.imap_host == "imap.x" and changed.has_password
