"""The sending domain's DNS checks against a real DNS server on loopback (dnsmasq) serving
good and broken mail domains (tests/support/mail_zone.py): every verdict, what it says it
found, and the exact record it tells the user to publish."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mailramp.kit.dns import parse_servers
from mailramp.kit.mail_dns import MailDns
from mailramp.kit.signing import TokenSigner
from mailramp.mailboxes.domain_checks import DomainChecks
from mailramp.mailboxes.models import DnsCheck, Mailbox
from mailramp.runtime import Services, build_services
from mailramp.storage.sql import SqlStore
from tests.conftest import TRACKING_KEY, make_mailbox, make_user
from tests.support.clock import FakeClock
from tests.support.dns_server import DnsServer
from tests.support.mail_zone import LOOKUPS, PUBLIC_HOST, start_mail_zone
from tests.support.postgres import free_port

GOOGLE_DKIM = "the key from Google Admin → Apps → Google Workspace → Gmail → Authenticate email"
PASSING = {"mx": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass"}
SHARED_LINKS = "warn"  # every mailbox here still uses the server's own tracking host


@pytest.fixture(scope="module")
def mail_zone() -> Iterator[DnsServer]:
    server = start_mail_zone()
    try:
        yield server
    finally:
        server.stop()


def _checks(zone: DnsServer | None, *, timeout: float = 5.0) -> DomainChecks:
    """Checks through the zone's server, or through a port where nothing answers (None)."""
    servers = parse_servers(zone.servers) if zone else [("127.0.0.1", free_port())]
    return DomainChecks(MailDns(servers, timeout=timeout), PUBLIC_HOST)


def _mailbox(email: str, provider: str = "gmail", **fields: Any) -> Mailbox:
    # A mailbox as stored; the checks read no time, so its dates are the suite clock's start.
    when = FakeClock()()
    return Mailbox.model_validate(
        {
            "_id": "6750a1b2c3d4e5f601234567",
            "mailbox_id": "6750a1b2c3d4e5f601234567",
            "user_id": "6750a1b2c3d4e5f601234568",
            "email": email,
            "provider": provider,
            "created_at": when,
            "updated_at": when,
            **fields,
        }
    )


def _by_name(checks: list[DnsCheck]) -> dict[str, DnsCheck]:
    return {check.name: check for check in checks}


def _verdicts(checks: list[DnsCheck]) -> dict[str, str]:
    return {check.name: check.verdict.value for check in checks}


async def test_a_domain_set_up_right_passes_every_check_but_the_shared_tracking_host(
    mail_zone: DnsServer,
) -> None:
    checks = await _checks(mail_zone).check(_mailbox("ann@good.example"))

    assert _verdicts(checks) == PASSING | {"tracking_domain": SHARED_LINKS}
    found = {check.name: check.found for check in checks}
    assert found["mx"] == "mail for good.example goes to smtp.google.com (1)"
    assert found["spf"] == (
        "v=spf1 include:_spf.google.com ~all — authorises Google Workspace, 1 of 10 DNS lookups"
    )
    assert found["dkim"] == "google._domainkey.good.example: RSA 2048-bit key"
    assert (
        found["dmarc"] == "_dmarc.good.example: p=quarantine, reports to mailto:dmarc@good.example"
    )
    assert [check.record for check in checks] == [
        None,
        None,
        None,
        None,
        f"links.good.example. CNAME {PUBLIC_HOST}.",
    ]


BROKEN = [
    pytest.param(
        "nospf.example",
        "spf",
        "fail",
        "nospf.example has no SPF record",
        'nospf.example. TXT "v=spf1 include:_spf.google.com ~all"',
        id="no SPF",
    ),
    pytest.param(
        "twospf.example",
        "spf",
        "fail",
        "twospf.example has 2 SPF records",
        'twospf.example. TXT "v=spf1 include:_spf.google.com ip4:192.0.2.10 -all"',
        id="two SPF records",
    ),
    pytest.param(
        "plusall.example",
        "spf",
        "fail",
        "plusall.example's SPF record ends in +all",
        'plusall.example. TXT "v=spf1 include:_spf.google.com ~all"',
        id="+all",
    ),
    pytest.param(
        "lookups.example",
        "spf",
        "fail",
        "lookups.example's SPF record needs 11 DNS lookups, over the limit of 10",
        'lookups.example. TXT "v=spf1 include:_spf.google.com '
        + " ".join(f"ip4:198.51.100.{n}" for n in range(1, LOOKUPS + 1))
        + ' ~all"',
        id="11 lookups",
    ),
    pytest.param(
        "nodmarc.example",
        "dmarc",
        "fail",
        "nodmarc.example has no usable DMARC record",
        # SPF and DKIM pass, so the domain's own mail passes: quarantine at once.
        '_dmarc.nodmarc.example. TXT "v=DMARC1; p=quarantine; '
        'rua=mailto:dmarc-reports@nodmarc.example"',
        id="no DMARC",
    ),
    pytest.param(
        "pnone.example",
        "dmarc",
        "warn",
        "_dmarc.pnone.example: p=none: receivers still deliver mail that fails DMARC",
        '_dmarc.pnone.example. TXT "v=DMARC1; p=quarantine; '
        'rua=mailto:dmarc-reports@pnone.example"',
        id="p=none",
    ),
    pytest.param(
        "nodkim.example",
        "dkim",
        "fail",
        "no DKIM key at google._domainkey.nodkim.example",
        f'google._domainkey.nodkim.example. TXT "v=DKIM1; k=rsa; p=<{GOOGLE_DKIM}>"',
        id="missing DKIM",
    ),
    pytest.param(
        "weakdkim.example",
        "dkim",
        "warn",
        "google._domainkey.weakdkim.example: RSA 1024-bit key; the providers now issue "
        "2048-bit keys",
        f'google._domainkey.weakdkim.example. TXT "v=DKIM1; k=rsa; p=<{GOOGLE_DKIM}>"',
        id="1024-bit DKIM",
    ),
    pytest.param(
        "nomx.example",
        "mx",
        "fail",
        "nomx.example has no MX record",
        "nomx.example. MX 1 smtp.google.com.",
        id="no MX",
    ),
]


@pytest.mark.parametrize(("domain", "check", "verdict", "found", "record"), BROKEN)
async def test_a_broken_domain_fails_that_check_alone_and_gets_the_record_to_publish(
    mail_zone: DnsServer, domain: str, check: str, verdict: str, found: str, record: str
) -> None:
    checks = await _checks(mail_zone).check(_mailbox(f"ann@{domain}"))

    expected = PASSING | {"tracking_domain": SHARED_LINKS, check: verdict}
    assert _verdicts(checks) == expected
    judged = _by_name(checks)[check]
    assert judged.found.startswith(found), judged.found
    assert judged.record == record


async def test_an_smtp_server_of_ones_own_is_authorised_by_its_address_or_named(
    mail_zone: DnsServer,
) -> None:
    own = _mailbox(
        "ann@own.example", "smtp", smtp_host="smtp.own.example", dkim_selectors=["google"]
    )
    bad = _mailbox(
        "ann@ownbad.example", "smtp", smtp_host="smtp.ownbad.example", dkim_selectors=["google"]
    )

    good_checks = _by_name(await _checks(mail_zone).check(own))
    bad_checks = _by_name(await _checks(mail_zone).check(bad))

    # 192.0.2.25 is inside ip4:192.0.2.0/24; the user named the selector their server uses.
    assert good_checks["spf"].verdict == "pass"
    assert good_checks["dkim"].found == "google._domainkey.own.example: RSA 2048-bit key"
    assert bad_checks["spf"].verdict == "fail"
    assert bad_checks["spf"].found == (
        "ownbad.example's SPF record does not authorise your SMTP server smtp.ownbad.example "
        "(a:smtp.ownbad.example): its mail fails SPF"
    )
    assert bad_checks["spf"].record == (
        'ownbad.example. TXT "v=spf1 ip4:198.51.100.0/24 a:smtp.ownbad.example -all"'
    )
    # Without named selectors, the usual ones are tried and none is found.
    unnamed = _by_name(
        await _checks(mail_zone).check(own.model_copy(update={"dkim_selectors": []}))
    )
    assert unnamed["dkim"].verdict == "fail"
    assert unnamed["dkim"].found.startswith(
        "no DKIM key at default._domainkey.own.example, mail._domainkey.own.example"
    )


# Through the service: stored on the mailbox, checked again daily, kept when DNS is down.


def _services(store: SqlStore, secret_box: Any, clock: FakeClock, checks: DomainChecks) -> Services:
    signer = TokenSigner([TRACKING_KEY])
    return build_services(store, secret_box, signer, clock=clock, domain_checks=checks)


async def test_the_verdicts_are_stored_on_the_mailbox_and_kept_when_dns_does_not_answer(
    store: SqlStore, secret_box: Any, clock: FakeClock, mail_zone: DnsServer
) -> None:
    services = _services(store, secret_box, clock, _checks(mail_zone))
    user = await make_user(services)
    mailbox = await make_mailbox(services, user, email="ann@pnone.example")

    checked = await services.mailboxes.check_domain(user.user_id, mailbox.mailbox_id)

    stored = await services.mailboxes.get_mailbox(user.user_id, mailbox.mailbox_id)
    assert stored.dns_checks == checked.dns_checks
    # An Outlook mailbox: Microsoft's include and selectors are what is looked for.
    assert _verdicts(stored.dns_checks) == {
        "mx": "pass",
        "spf": "fail",
        "dkim": "fail",
        "dmarc": "warn",
        "tracking_domain": "warn",
    }
    assert _by_name(stored.dns_checks)["spf"].record == (
        'pnone.example. TXT "v=spf1 include:_spf.google.com '
        'include:spf.protection.outlook.com ~all"'
    )
    assert _by_name(stored.dns_checks)["dkim"].record == (
        "selector1._domainkey.pnone.example. CNAME "
        "selector1-pnone-example._domainkey.<your tenant>.onmicrosoft.com. "
        "(turn DKIM on in Microsoft Defender → Email authentication)"
    )
    assert stored.dns_verdict == "fail"
    assert stored.dns_checked_at == clock()
    assert stored.dns_check_problem is None

    clock.advance(hours=1)
    down = _services(store, secret_box, clock, _checks(None, timeout=0.5))
    again = await down.mailboxes.check_domain(user.user_id, mailbox.mailbox_id)

    assert again.dns_checks == stored.dns_checks
    assert again.dns_check_problem is not None
    assert again.dns_check_problem.startswith("DNS did not answer (")
    assert again.dns_check_problem.endswith("); the previous checks stand")


async def test_every_linked_mailboxs_domain_is_checked_again_once_a_day(
    store: SqlStore, secret_box: Any, clock: FakeClock, mail_zone: DnsServer
) -> None:
    services = _services(store, secret_box, clock, _checks(mail_zone))
    user = await make_user(services)
    good = await make_mailbox(services, user, email="ann@good.example")
    await make_mailbox(services, user, email="bo@nomx.example")
    gone = await make_mailbox(services, user, email="cy@nospf.example")
    await services.mailboxes.unlink_mailbox(user.user_id, gone.mailbox_id)

    assert await services.mailboxes.recheck_domains() == 2
    first = await services.mailboxes.get_mailbox(user.user_id, good.mailbox_id)
    assert first.dns_checked_at == clock()
    assert len(first.dns_checks) == 5

    clock.advance(hours=23)
    assert await services.mailboxes.recheck_domains() == 0
    clock.advance(hours=2)
    assert await services.mailboxes.recheck_domains(limit=1) == 1
    assert await services.mailboxes.recheck_domains() == 1
    second = await services.mailboxes.get_mailbox(user.user_id, good.mailbox_id)
    assert second.dns_checked_at == clock()
    unlinked = await services.mailboxes.get_mailbox(user.user_id, gone.mailbox_id)
    assert unlinked.dns_checked_at is None


async def test_a_selector_too_long_for_dns_on_a_long_domain_is_a_missing_key_not_an_error(
    mail_zone: DnsServer,
) -> None:
    # A selector and a domain each valid, together past DNS's 255 octets: no such name can
    # hold a key (found by fuzzing the API: it was a server error).
    domain = ".".join(["a" * 60] * 4) + ".example"
    selector = ".".join(["s" * 20] * 3)
    facts = await MailDns(parse_servers(mail_zone.servers), timeout=5.0).look_up(domain, [selector])
    assert facts.domain == domain
    assert facts.mx == ()
    assert [(key.selector, key.record, key.error) for key in facts.dkim] == [(selector, None, None)]
