"""A mailbox's own tracking domain, checked against a real DNS server on loopback (dnsmasq,
serving the zone in tests/conftest.py): used by the emails' links only once DNS shows it
leads to mailramp's public host; refused with the field named when it is no host name."""

from __future__ import annotations

import io
from typing import Any

import pytest

from mailramp.accounts.models import User
from mailramp.errors import NotFoundError, ValidationError
from mailramp.kit.dns import DnsResolver, parse_servers
from mailramp.kit.signing import TokenSigner
from mailramp.mailboxes.models import NO_GAP, Mailbox
from mailramp.mailboxes.tracking_domain import TrackingDomains, public_host
from mailramp.providers.registry import DefaultProviders
from mailramp.runtime import Services, build_services
from mailramp.sending.message import build_message
from mailramp.sending.worker import SendingWorker, WorkerSettings
from mailramp.storage.sql import SqlStore
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import EmailTracking
from tests.conftest import PUBLIC_HOST, TRACKING_KEY, make_campaign, make_mailbox, make_user
from tests.support.clock import FakeClock
from tests.support.dns_server import DnsServer
from tests.support.postgres import free_port
from tests.support.smtp import SmtpServer

PUBLIC = f"https://{PUBLIC_HOST}"
HTML = '<p>Hi, see <a href="https://acme.com/offer">our offer</a>.</p>'


def _services(
    store: SqlStore, secret_box: Any, clock: FakeClock, domains: TrackingDomains
) -> Services:
    signer = TokenSigner([TRACKING_KEY])
    return build_services(store, secret_box, signer, clock=clock, tracking_domains=domains)


def _domains(zone: DnsServer, public_base_url: str = PUBLIC) -> TrackingDomains:
    return TrackingDomains(public_host(public_base_url), DnsResolver(parse_servers(zone.servers)))


@pytest.fixture
def services(store: SqlStore, secret_box: Any, clock: FakeClock, dns_zone: DnsServer) -> Services:
    return _services(store, secret_box, clock, _domains(dns_zone))


async def _sender(services: Services) -> tuple[User, Mailbox]:
    user = await make_user(services)
    return user, await make_mailbox(services, user, email="ann@acme.example")


async def _email_links(services: Services, user: User, mailbox: Mailbox) -> dict[str, str]:
    """The links of the email this mailbox would send now: the HTML part, the text part's
    unsubscribe line and the List-Unsubscribe header."""
    mailbox = await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    campaign = await make_campaign(services, user, mailbox, message=HTML, message_format="html")
    record = EmailTracking.model_validate(
        {
            "_id": "6750a1b2c3d4e5f601234567",
            "campaign_id": campaign.campaign_id,
            "user_id": user.user_id,
            "mailbox_id": mailbox.mailbox_id,
            "recipient_email": "bo@example.com",
            "scheduled_at": services.clock(),
            "created_at": services.clock(),
            "updated_at": services.clock(),
        }
    )
    links = TrackingLinks(TokenSigner([TRACKING_KEY]), PUBLIC)
    message = build_message(
        campaign=campaign, mailbox=mailbox, record=record, sent_at=services.clock(), tracking=links
    )
    text, html = (part.get_payload(decode=True).decode() for part in message.get_payload())
    return {"html": html, "text": text, "header": message["List-Unsubscribe"]}


async def test_a_domain_that_leads_here_is_checked_then_used_by_every_link(
    services: Services, clock: FakeClock
) -> None:
    user, mailbox = await _sender(services)
    changed = await services.mailboxes.set_tracking_domain(
        user.user_id, mailbox.mailbox_id, " Links.ACME.example. "
    )
    assert changed.tracking_domain == "links.acme.example"
    assert changed.tracking_domain_verified_at == clock()
    assert changed.tracking_domain_checked_at == clock()
    assert changed.tracking_domain_problem is None
    stored = await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert stored.tracking_host == "links.acme.example"

    email = await _email_links(services, user, stored)
    assert 'href="https://links.acme.example/t/c/' in email["html"]
    assert '<img src="https://links.acme.example/t/o/' in email["html"]
    assert "Unsubscribe: https://links.acme.example/t/u/" in email["text"]
    assert email["header"].startswith("<https://links.acme.example/t/u/")
    assert PUBLIC_HOST not in email["html"] + email["text"] + email["header"]


@pytest.mark.parametrize("domain", ["hop.acme.example", "flat.acme.example"])
async def test_a_second_alias_hop_or_a_flattened_cname_leads_here_too(
    services: Services, domain: str
) -> None:
    user, mailbox = await _sender(services)
    changed = await services.mailboxes.set_tracking_domain(user.user_id, mailbox.mailbox_id, domain)
    assert changed.tracking_host == domain


@pytest.mark.parametrize(
    ("domain", "problem"),
    [
        (
            "go.acme.example",
            "go.acme.example is an alias of other.mailramp.example, not of "
            f"{PUBLIC_HOST}: replace it with go.acme.example. CNAME {PUBLIC_HOST}.",
        ),
        (
            "wrong.acme.example",
            f"wrong.acme.example points at 192.0.2.8, not at {PUBLIC_HOST}: "
            f"add wrong.acme.example. CNAME {PUBLIC_HOST}.",
        ),
        (
            "missing.acme.example",
            "missing.acme.example does not exist in DNS: "
            f"add missing.acme.example. CNAME {PUBLIC_HOST}.",
        ),
    ],
)
async def test_a_domain_that_does_not_lead_here_is_kept_with_the_record_to_add_but_not_used(
    services: Services, clock: FakeClock, domain: str, problem: str
) -> None:
    user, mailbox = await _sender(services)
    changed = await services.mailboxes.set_tracking_domain(user.user_id, mailbox.mailbox_id, domain)
    assert changed.tracking_domain == domain
    assert changed.tracking_domain_verified_at is None
    assert changed.tracking_domain_checked_at == clock()
    assert changed.tracking_domain_problem == problem
    email = await _email_links(services, user, changed)
    assert f'href="{PUBLIC}/t/c/' in email["html"]
    assert domain not in email["html"] + email["text"] + email["header"]


async def test_a_check_without_an_answer_keeps_a_working_domain_and_a_wrong_answer_stops_it(
    store: SqlStore, secret_box: Any, clock: FakeClock, dns_zone: DnsServer, services: Services
) -> None:
    user, mailbox = await _sender(services)
    await services.mailboxes.set_tracking_domain(
        user.user_id, mailbox.mailbox_id, "links.acme.example"
    )
    verified = clock()

    # The resolver is down: nothing is known, so the domain stays in use.
    clock.advance(days=1)
    silent = TrackingDomains(PUBLIC_HOST, DnsResolver([("127.0.0.1", free_port())], timeout=1))
    down = _services(store, secret_box, clock, silent)
    checked = await down.mailboxes.check_tracking_domain(user.user_id, mailbox.mailbox_id)
    assert checked.tracking_domain_verified_at == verified
    assert checked.tracking_domain_checked_at == clock()
    assert checked.tracking_domain_problem == (
        "links.acme.example could not be checked: no DNS server answered in time"
    )
    assert checked.tracking_host == "links.acme.example"

    # mailramp moved to another host the record does not lead to: the links leave the domain.
    clock.advance(days=1)
    moved = _services(
        store, secret_box, clock, _domains(dns_zone, "https://moved.mailramp.example")
    )
    checked = await moved.mailboxes.check_tracking_domain(user.user_id, mailbox.mailbox_id)
    assert checked.tracking_domain_verified_at is None
    assert checked.tracking_host is None
    assert checked.tracking_domain_problem == (
        "links.acme.example is an alias of track.mailramp.example, not of "
        "moved.mailramp.example: replace it with links.acme.example. CNAME moved.mailramp.example."
    )

    # Removed: no trace of it is left.
    cleared = await services.mailboxes.set_tracking_domain(user.user_id, mailbox.mailbox_id, "")
    assert (cleared.tracking_domain, cleared.tracking_domain_checked_at) == (None, None)
    assert cleared.tracking_domain_problem is None


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("https://links.acme.example/", "is not a host name: give only the name"),
        ("links.acme.example:8080", "is not a host name"),
        ("acme.example", "must be a subdomain of your own domain"),
        ("192.0.2.1", "is an address, not a host name"),
        ("-links.acme.example", "is not a valid host name (label '-links')"),
        ("links..acme.example", "is not a valid host name"),
        (PUBLIC_HOST, "is mailramp's own address already"),
    ],
)
async def test_what_is_no_host_name_is_refused_naming_the_field_and_changes_nothing(
    services: Services, typed: str, says: str
) -> None:
    user, mailbox = await _sender(services)
    await services.mailboxes.set_tracking_domain(
        user.user_id, mailbox.mailbox_id, "links.acme.example"
    )
    before = await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    with pytest.raises(ValidationError) as caught:
        await services.mailboxes.set_tracking_domain(user.user_id, mailbox.mailbox_id, typed)
    assert caught.value.field == "tracking_domain"
    assert says in caught.value.detail
    assert await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id) == before


async def test_another_users_mailbox_is_not_found(services: Services) -> None:
    _, mailbox = await _sender(services)
    stranger = await make_user(services)
    with pytest.raises(NotFoundError):
        await services.mailboxes.set_tracking_domain(
            stranger.user_id, mailbox.mailbox_id, "links.acme.example"
        )


async def test_the_worker_checks_a_day_old_domain_again_before_its_links_go_out(
    store: SqlStore, secret_box: Any, clock: FakeClock, dns_zone: DnsServer
) -> None:
    smtp = SmtpServer({"ann@acme.example": "smtp-pass"}).start()
    try:
        services = _services(store, secret_box, clock, _domains(dns_zone))
        user = await make_user(services)
        mailbox = await services.mailboxes.create_mailbox(
            user.user_id,
            email="ann@acme.example",
            provider="smtp",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="plain",
            password="smtp-pass",
        )
        await services.mailboxes.set_tracking_domain(
            user.user_id, mailbox.mailbox_id, "links.acme.example"
        )

        # Within a day the last check stands: a resolver that answers nothing is not asked.
        clock.advance(hours=23)
        silent = TrackingDomains(PUBLIC_HOST, DnsResolver([("127.0.0.1", free_port())], timeout=1))
        down = _services(store, secret_box, clock, silent)
        stored = await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
        assert await down.mailboxes.recheck_tracking_domain(stored) == stored

        # Two days on, mailramp moved to a host the record does not lead to: the worker
        # checks before sending, and the email's links use the public address.
        clock.advance(days=2)
        moved_to = "https://moved.mailramp.example"
        moved = _services(store, secret_box, clock, _domains(dns_zone, moved_to))
        campaign = await make_campaign(
            moved, user, mailbox, message=HTML, message_format="html", start_time=clock()
        )
        await moved.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(b"email\nbo@example.com\n")
        )
        worker = SendingWorker(
            store,
            moved.mailboxes,
            DefaultProviders(allow_private_hosts=True),
            settings=WorkerSettings(retry_base_seconds=60.0, lease_seconds=120.0, send_gap=NO_GAP),
            clock=clock,
            tracking=TrackingLinks(TokenSigner([TRACKING_KEY]), moved_to),
        )
        try:
            while not smtp.inbox.messages and clock() < campaign.end_time:
                while await worker.tick():
                    pass
                clock.advance(minutes=5)
        finally:
            await worker.close()
    finally:
        smtp.stop()
    (sent,) = [item.message for item in smtp.inbox.messages]
    html = sent.get_body(preferencelist=("html",)).get_content()
    assert f'href="{moved_to}/t/c/' in html and "links.acme.example" not in sent.as_string()
    after = await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert after.tracking_host is None
    assert "not of moved.mailramp.example" in (after.tracking_domain_problem or "")
