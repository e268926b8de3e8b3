"""A mailbox's own tracking domain: the host its emails' links and pixel use instead of
mailramp's public address, once DNS shows it leads to this server.

Links on a shared tracking host tie every sender's reputation to everyone else's, and a
link whose host differs from the sender's domain is a spam signal; a name under the
sender's own domain (`links.acme.com`) avoids both. The user adds one record — a CNAME to
the host of MAILRAMP_PUBLIC_BASE_URL, or an A/AAAA record when that host is an address —
and mailramp checks it before any email uses it. Requests for the domain reach the same
server, which serves them like requests for its public address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from mailramp.errors import ValidationError
from mailramp.kit.dns import DnsNameMissing, DnsUnavailable, Resolution, normal_name

FIELD = "tracking_domain"
RECHECK_AFTER = timedelta(days=1)
"""How old a check may be before the worker checks again before sending: a record removed
from DNS stops the links using the domain within a day, not never."""
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class NameResolver(Protocol):
    """DNS, as `kit.dns.DnsResolver` answers it."""

    async def resolve(self, name: str) -> Resolution: ...


def parse_tracking_domain(value: str) -> str:
    """The host name a user typed, in the form DNS and URLs use (lower case, IDNA-encoded);
    ValidationError on `tracking_domain` naming what is wrong with it."""
    text = normal_name(value)
    if not text:
        raise ValidationError(FIELD, "is empty", value=value)
    if "://" in text or any(mark in text for mark in "/:@?# "):
        raise ValidationError(
            FIELD,
            f"{value!r} is not a host name: give only the name, e.g. links.example.com",
            value=value,
        )
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise ValidationError(FIELD, f"{value!r} is an address, not a host name", value=value)
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(FIELD, f"{value!r} is not a valid host name", value=value) from None
    labels = ascii_name.split(".")
    bad = next((label for label in labels if not _LABEL.match(label)), None)
    if bad is not None or len(ascii_name) > 253:
        raise ValidationError(
            FIELD, f"{value!r} is not a valid host name (label {bad!r})", value=value
        )
    if len(labels) < 3 or labels[-1].isdigit():
        raise ValidationError(
            FIELD,
            f"{value!r} must be a subdomain of your own domain, e.g. links.example.com "
            "(a domain's apex cannot be a CNAME)",
            value=value,
        )
    return ascii_name


def record_to_add(domain: str, target: str) -> str:
    """The DNS record that makes `domain` lead to `target`, as a zone file writes it."""
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        return f"{domain}. CNAME {target}."
    return f"{domain}. {'A' if address.version == 4 else 'AAAA'} {target}"


@dataclass(frozen=True)
class DomainCheck:
    """The outcome of one check: `leads_here` True or False when DNS answered, None when it
    did not (the previous verdict then stands); `problem` says what is wrong and what to add."""

    leads_here: bool | None
    problem: str | None = None


async def check_tracking_domain(domain: str, target: str, dns: NameResolver) -> DomainCheck:
    """Whether `domain` leads to `target` (the public base URL's host): an alias chain that
    passes through it, or only addresses that are the target's (a flattened CNAME)."""
    add = f"add {record_to_add(domain, target)}"
    try:
        found = await dns.resolve(domain)
        if target in found.aliases:
            return DomainCheck(True)
        wanted = await _addresses_of(target, dns)
        if found.addresses and found.addresses <= wanted:
            return DomainCheck(True)
    except DnsNameMissing as missing:
        return DomainCheck(False, f"{missing} does not exist in DNS: {add}")
    except DnsUnavailable as error:
        return DomainCheck(None, f"{domain} could not be checked: {error}")
    if found.aliases:
        return DomainCheck(
            False,
            f"{domain} is an alias of {found.aliases[0]}, not of {target}: "
            f"replace it with {record_to_add(domain, target)}",
        )
    if found.addresses:
        shown = ", ".join(sorted(found.addresses))
        return DomainCheck(False, f"{domain} points at {shown}, not at {target}: {add}")
    return DomainCheck(False, f"{domain} has no CNAME or address record: {add}")


async def _addresses_of(target: str, dns: NameResolver) -> frozenset[str]:
    try:
        return frozenset({str(ipaddress.ip_address(target))})
    except ValueError:
        return (await dns.resolve(target)).addresses


def tracking_base_url(public_base_url: str, domain: str) -> str:
    """The public base URL with its host replaced by the tracking domain (scheme, port and
    path kept: the same server, reached by another name)."""
    parts = urlsplit(public_base_url)
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{domain}{port}", parts.path, "", ""))


STORED_FIELDS = (
    FIELD,
    "tracking_domain_verified_at",
    "tracking_domain_checked_at",
    "tracking_domain_problem",
)
"""The mailbox fields a tracking domain lives in (all None: the mailbox has none)."""


def verdict(check: DomainCheck, *, verified_at: datetime | None, now: datetime) -> dict[str, Any]:
    """The mailbox fields a check writes: verified now when DNS shows the domain leads
    here, not in use when it shows otherwise, as before (`verified_at`) when DNS did not
    answer — a resolver's bad minute does not switch a working domain off."""
    found = {True: now, False: None}
    return {
        "tracking_domain_verified_at": (
            verified_at if check.leads_here is None else found[check.leads_here]
        ),
        "tracking_domain_checked_at": now,
        "tracking_domain_problem": check.problem,
    }


def public_host(public_base_url: str) -> str:
    """The host of MAILRAMP_PUBLIC_BASE_URL: where a tracking domain's record must lead."""
    return normal_name(urlsplit(public_base_url).hostname or "")


@dataclass(frozen=True)
class TrackingDomains:
    """Checks tracking domains, through `dns`, against `target` (`public_host`)."""

    target: str
    dns: NameResolver

    async def check(self, domain: str) -> DomainCheck:
        return await check_tracking_domain(domain, self.target, self.dns)
