"""What a mail domain publishes in DNS: its MX hosts, its SPF policy, its DMARC policy and
its DKIM keys — facts, not verdicts (`mailboxes/domain_checks.py` judges them).

SPF and DMARC are read and parsed by checkdmarc (SPF's nested includes and its RFC 7208
lookup count, DMARC's tags and the organisational-domain fallback); DKIM keys are parsed by
dkimpy. Every question goes to the same servers as `kit.dns` (MAILRAMP_DNS_SERVERS, or the
machine's resolver), so tests point all of it at a DNS server on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

from mailramp.kit.dns import DnsUnavailable, normal_name

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SPF_LOOKUP_LIMIT = 10
"""RFC 7208 §4.6.4: more DNS-querying terms than this is a permanent error."""


@dataclass(frozen=True)
class SpfTerm:
    """One mechanism of an SPF record (`include`, `ip4`, `a`, …) with its qualifier's
    result (`pass` for `+`/none, `fail`, `softfail`, `neutral`); an `include` carries the
    terms of the record it includes."""

    mechanism: str
    value: str
    action: str
    terms: tuple[SpfTerm, ...] = ()

    def walk(self) -> Iterable[SpfTerm]:
        """Every term it includes, at any depth, depth first (not itself)."""
        for term in self.terms:
            yield term
            yield from term.walk()


@dataclass(frozen=True)
class SpfFacts:
    """The domain's SPF: every `v=spf1` TXT record found (RFC 7208 allows one), and when
    exactly one was found, its parse — `error` says why it cannot be used as published."""

    records: tuple[str, ...]
    error: str | None = None
    lookups: int | None = None
    all_result: str | None = None
    terms: tuple[SpfTerm, ...] = ()

    def walk(self) -> Iterable[SpfTerm]:
        """Every term at any depth of includes, depth first."""
        return SpfTerm("", "", "pass", self.terms).walk()

    @property
    def includes(self) -> frozenset[str]:
        """Every domain included, at any depth (lower case)."""
        return frozenset(
            normal_name(t.value) for t in self.walk() if t.mechanism in ("include", "redirect")
        )

    @property
    def networks(self) -> tuple[IpNetwork, ...]:
        """Every `ip4`/`ip6` network authorised, at any depth."""
        found = []
        for term in self.walk():
            if term.mechanism in ("ip4", "ip6") and term.action == "pass":
                try:
                    found.append(ipaddress.ip_network(term.value, strict=False))
                except ValueError:
                    continue
        return tuple(found)


@dataclass(frozen=True)
class DmarcFacts:
    """The DMARC record that applies to the domain (its own, or its organisational
    domain's: `location`), its explicit tags, and checkdmarc's error when there is none or it
    is invalid."""

    record: str | None
    location: str | None = None
    tags: Mapping[str, str] | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DkimKey:
    """What one selector publishes: nothing (`record` None), a revoked key (empty `p=`), a
    key (its type and size in bits), or a record that cannot be read (`error`)."""

    selector: str
    record: str | None
    key_type: str | None = None
    bits: int | None = None
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.record is not None and self.error is None and self.bits is not None


@dataclass(frozen=True)
class MailDomainFacts:
    """Everything the checks read about one domain."""

    domain: str
    mx: tuple[tuple[int, str], ...]
    spf: SpfFacts
    dmarc: DmarcFacts
    dkim: tuple[DkimKey, ...]


class MailDns:
    """Reads mail domains' records through the given servers (or the machine's resolver)."""

    def __init__(self, servers: Sequence[tuple[str, int]] = (), *, timeout: float = 5.0) -> None:
        resolver = dns.resolver.Resolver(configure=not servers)
        if servers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in servers
            ]
        resolver.lifetime = timeout
        resolver.timeout = timeout
        self._resolver = resolver
        self._timeout = timeout

    async def look_up(self, domain: str, selectors: Sequence[str]) -> MailDomainFacts:
        """The domain's MX, SPF, DMARC and the DKIM keys at `selectors`. DnsUnavailable when
        DNS does not answer at all (nothing is then known; a check must not say "missing")."""
        return await asyncio.to_thread(self._look_up, normal_name(domain), tuple(selectors))

    async def addresses(self, host: str) -> frozenset[str]:
        """The IPv4 and IPv6 addresses of `host` (empty when it has none)."""
        return await asyncio.to_thread(self._addresses, normal_name(host))

    def _look_up(self, domain: str, selectors: tuple[str, ...]) -> MailDomainFacts:
        mx = self._mx(domain)
        return MailDomainFacts(
            domain=domain,
            mx=mx,
            spf=self._spf(domain),
            dmarc=self._dmarc(domain),
            dkim=tuple(self._dkim(domain, selector) for selector in selectors),
        )

    def _answer(self, name: str, kind: str) -> list[Any]:
        """The records of `kind` at `name`; [] when the name or the kind does not exist."""
        try:
            return list(self._resolver.resolve(name, kind, search=False))
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return []
        except (dns.name.NameTooLong, dns.name.IDNAException, dns.exception.SyntaxError):
            # A name no DNS can hold (a long selector on a long domain, a character IDNA
            # refuses in a host name) has no records.
            return []
        except dns.exception.Timeout:
            raise DnsUnavailable("no DNS server answered in time") from None
        except dns.resolver.NoNameservers:
            raise DnsUnavailable("every DNS server failed to answer") from None

    def _mx(self, domain: str) -> tuple[tuple[int, str], ...]:
        found = [
            (record.preference, normal_name(record.exchange.to_text()))
            for record in self._answer(domain, "MX")
        ]
        return tuple(sorted(found))

    def _addresses(self, host: str) -> frozenset[str]:
        found: set[str] = set()
        for kind in ("A", "AAAA"):
            found.update(record.address for record in self._answer(host, kind))
        return frozenset(found)

    def _txt(self, name: str) -> list[str]:
        return [
            b"".join(record.strings).decode("utf-8", "replace")
            for record in self._answer(name, "TXT")
        ]

    def _spf(self, domain: str) -> SpfFacts:
        # Sorted: DNS answers a name's records in any order, and a merge of two must not
        # read differently from one check to the next.
        records = tuple(
            sorted(text for text in self._txt(domain) if text.lower().split(" ", 1)[0] == "v=spf1")
        )
        if len(records) != 1:
            return SpfFacts(records)
        with warnings.catch_warnings():
            # dnspython's DNSSEC module, which checkdmarc imports, defines DSA key classes
            # that newer cryptography releases warn about; nothing here uses DSA.
            warnings.filterwarnings("ignore", message="DSA is deprecated")
            from checkdmarc.spf import check_spf  # (0.9 s to import: only when a check runs)

        result = check_spf(domain, resolver=self._resolver, timeout=self._timeout)
        parsed = result.get("parsed") or {}
        terms = _spf_terms(parsed)
        lookups = result.get("dns_lookups")
        if lookups is not None and lookups > SPF_LOOKUP_LIMIT:
            # The parse stops at the limit: read the includes it did not reach on their
            # own, so what they list is known (to replace them by their addresses).
            reached = {term.value.lower() for term in terms if term.mechanism == "include"}
            for written in records[0].split()[1:]:
                name, _, value = written.lstrip("+").partition(":")
                if name.lower() == "include" and value.lower() not in reached:
                    inner = check_spf(value, resolver=self._resolver, timeout=self._timeout)
                    nested = _spf_terms(inner.get("parsed") or {})
                    terms += (SpfTerm("include", value, "pass", nested),)
        return SpfFacts(
            records,
            error=result.get("error"),
            lookups=lookups,
            all_result=parsed.get("all"),
            terms=terms,
        )

    def _dmarc(self, domain: str) -> DmarcFacts:
        from checkdmarc.dmarc import check_dmarc

        result = check_dmarc(domain, resolver=self._resolver, timeout=self._timeout)
        tags = {
            name: _tag_text(tag["value"])
            for name, tag in (result.get("tags") or {}).items()
            if tag.get("explicit")
        }
        return DmarcFacts(
            record=result.get("record"),
            location=result.get("location"),
            tags=tags or None,
            error=result.get("error"),
            warnings=tuple(result.get("warnings") or ()),
        )

    def _dkim(self, domain: str, selector: str) -> DkimKey:
        import dkim.crypto  # (0.2 s to import: only when a check runs)
        import dkim.util

        texts = self._txt(f"{selector}._domainkey.{domain}")
        if not texts:
            return DkimKey(selector, None)
        record = texts[0]
        try:
            tags = dkim.util.parse_tag_value(record.encode())
        except dkim.util.InvalidTagValueList as error:
            return DkimKey(selector, record, error=f"the record is not tag=value pairs ({error})")
        key_type = tags.get(b"k", b"rsa").decode("ascii", "replace").lower()
        data = tags.get(b"p", b"")
        if not data.strip():
            return DkimKey(selector, record, key_type, error="the key is revoked (empty p=)")
        try:
            raw = base64.b64decode(b"".join(data.split()), validate=True)
        except binascii.Error:
            return DkimKey(selector, record, key_type, error="p= is not base64")
        if key_type == "ed25519":
            if len(raw) != 32:
                return DkimKey(selector, record, key_type, error="p= is not an Ed25519 key")
            return DkimKey(selector, record, key_type, bits=256)
        try:
            key = dkim.crypto.parse_public_key(raw)
        except dkim.crypto.UnparsableKeyError:
            return DkimKey(selector, record, key_type, error="p= is not an RSA public key")
        return DkimKey(selector, record, key_type, bits=int(key["modulus"]).bit_length())


def _spf_terms(parsed: Mapping[str, Any]) -> tuple[SpfTerm, ...]:
    terms = []
    for mechanism in parsed.get("mechanisms") or ():
        nested = mechanism.get("parsed") or {}
        terms.append(
            SpfTerm(
                mechanism=str(mechanism.get("mechanism", "")),
                value=str(mechanism.get("value", "")),
                action=str(mechanism.get("action", "pass")),
                terms=_spf_terms(nested),
            )
        )
    redirect = parsed.get("redirect")
    if isinstance(redirect, Mapping):
        # `redirect=` hands the whole decision to another domain's record: its terms count
        # as this record's.
        terms.append(
            SpfTerm(
                "redirect",
                str(redirect.get("domain", "")),
                "pass",
                _spf_terms(redirect.get("parsed") or {}),
            )
        )
    return tuple(terms)


def _tag_text(value: Any) -> str:
    """A DMARC tag's value as written: report URIs back to `mailto:` form."""
    if isinstance(value, list):
        return ",".join(
            f"{item.get('scheme', 'mailto')}:{item.get('address', '')}"
            if isinstance(item, Mapping)
            else str(item)
            for item in value
        )
    return str(value)
