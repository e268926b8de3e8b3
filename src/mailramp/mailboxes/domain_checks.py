"""Whether a mailbox's sending domain is set up to reach inboxes: MX, SPF, DKIM, DMARC and
the tracking domain, each judged pass / warn / fail, with the exact record to publish for a
warning or a failure.

The facts come from DNS (`kit/mail_dns.py`: checkdmarc reads SPF and DMARC, dkimpy the DKIM
keys); the judgement is here, written as a mail engineer reviews a domain:

- **MX**: the domain must take mail, or replies, bounces and complaints are lost, and
  receivers distrust a sender whose domain cannot be answered.
- **SPF**: exactly one `v=spf1` record (two is a permanent error), that authorises the
  mailbox's sender, does not end in `+all` (anyone may send), needs at most 10 DNS lookups
  (RFC 7208 §4.6.4; beyond that receivers answer permerror), and ends in `~all` or `-all`.
- **DKIM**: a key at one of the sender's selectors (or the ones the user named), of at
  least 1024 bits (RFC 8301; 2048 is what the providers now issue).
- **DMARC**: a record, with a policy that is enforced (`p=none` is a warning: a spoofer's
  mail is still delivered) and a `rua` address, or no one sees the aggregate reports.
- **Tracking domain**: links and the pixel on a host shared with every other sender of the
  server and unlike the sender's domain is a spam signal; a name under the sender's domain
  (a CNAME to the server) avoids it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from mailramp.kit.mail_dns import (
    SPF_LOOKUP_LIMIT,
    DkimKey,
    DmarcFacts,
    MailDomainFacts,
    SpfFacts,
)
from mailramp.mailboxes.models import DnsCheck, Mailbox, Verdict
from mailramp.mailboxes.senders import Sender, selectors_for, sender_for
from mailramp.mailboxes.tracking_domain import record_to_add

DKIM_MIN_BITS = 1024
"""RFC 8301: verifiers must not accept RSA keys shorter than this."""
DKIM_GOOD_BITS = 2048
TXT_STRING_LIMIT = 255
"""The longest character-string a TXT record holds; longer values are split into several."""
CHECKS = ("mx", "spf", "dkim", "dmarc", "tracking_domain")
RECHECK_AFTER = timedelta(days=1)
"""How old a domain's checks may get before the worker checks it again: a record someone
removes shows within a day."""


class MailDomainLookup(Protocol):
    """DNS, as `kit.mail_dns.MailDns` reads it. Both raise `kit.dns.DnsUnavailable` when DNS
    does not answer."""

    async def look_up(self, domain: str, selectors: Sequence[str]) -> MailDomainFacts: ...

    async def addresses(self, host: str) -> frozenset[str]: ...


@dataclass(frozen=True)
class DomainChecks:
    """Checks mailboxes' sending domains through `dns`; `public_host` is where tracking
    links lead when a mailbox has no tracking domain of its own."""

    dns: MailDomainLookup
    public_host: str

    async def check(self, mailbox: Mailbox) -> list[DnsCheck]:
        """Every check of the mailbox's domain; DnsUnavailable when DNS did not answer."""
        facts = await self.dns.look_up(mailbox.domain, selectors_for(mailbox))
        addresses: frozenset[str] = frozenset()
        if sender_for(mailbox).spf_include is None and mailbox.smtp_host:
            addresses = await self._addresses(mailbox.smtp_host)
        setup = setup_for(mailbox, public_host=self.public_host, smtp_addresses=addresses)
        return judge(facts, setup)

    async def _addresses(self, host: str) -> frozenset[str]:
        try:
            return frozenset({str(ipaddress.ip_address(host))})
        except ValueError:
            return await self.dns.addresses(host)


@dataclass(frozen=True)
class SendingSetup:
    """What the checks compare DNS against, besides the domain's own records."""

    sender: Sender
    smtp_host: str | None
    smtp_addresses: frozenset[str]
    """The SMTP server's addresses, when the sender is a server mailramp does not know."""
    tracking_host: str
    """The host the mailbox's links use now: its verified tracking domain or the server's."""
    public_host: str
    tracking_domain: str | None = None
    tracking_problem: str | None = None


def setup_for(
    mailbox: Mailbox, *, public_host: str, smtp_addresses: frozenset[str] = frozenset()
) -> SendingSetup:
    """What the checks of `mailbox`'s domain compare DNS against."""
    return SendingSetup(
        sender=sender_for(mailbox),
        smtp_host=mailbox.smtp_host,
        smtp_addresses=smtp_addresses,
        tracking_host=mailbox.tracking_host or public_host,
        public_host=public_host,
        tracking_domain=mailbox.tracking_domain,
        tracking_problem=mailbox.tracking_domain_problem,
    )


def judge(facts: MailDomainFacts, setup: SendingSetup) -> list[DnsCheck]:
    """Every check of the domain, in `CHECKS` order."""
    spf = judge_spf(facts.domain, facts.spf, setup)
    dkim = judge_dkim(facts.domain, facts.dkim, setup.sender)
    authenticated = spf.verdict is Verdict.PASS and dkim.verdict is not Verdict.FAIL
    return [
        judge_mx(facts.domain, facts.mx, setup),
        spf,
        dkim,
        judge_dmarc(facts.domain, facts.dmarc, authenticated=authenticated),
        judge_tracking(facts.domain, setup),
    ]


def judge_mx(domain: str, mx: Sequence[tuple[int, str]], setup: SendingSetup) -> DnsCheck:
    records = " and ".join(setup.sender.mx_records(domain, setup.smtp_host))
    hosts = [host for _, host in mx if host]
    if not hosts:
        found = (
            f"{domain} declares it takes no mail (null MX)" if mx else f"{domain} has no MX record"
        )
        return DnsCheck(
            name="mx",
            verdict=Verdict.FAIL,
            found=f"{found}: replies, bounces and complaints to it cannot arrive, and "
            "receivers distrust a sender that cannot be answered",
            record=records,
        )
    shown = ", ".join(f"{host} ({preference})" for preference, host in mx)
    return DnsCheck(name="mx", verdict=Verdict.PASS, found=f"mail for {domain} goes to {shown}")


def judge_spf(domain: str, spf: SpfFacts, setup: SendingSetup) -> DnsCheck:
    mechanism = setup.sender.spf_mechanism(setup.smtp_host)
    who = setup.sender.name

    def failed(found: str, terms: Sequence[str]) -> DnsCheck:
        return DnsCheck(
            name="spf", verdict=Verdict.FAIL, found=found, record=spf_record(domain, terms)
        )

    if not spf.records:
        return failed(
            f"{domain} has no SPF record: receivers cannot tell {who} may send as it",
            [mechanism, "~all"],
        )
    if len(spf.records) > 1:
        return failed(
            f"{domain} has {len(spf.records)} SPF records; receivers treat more than one as a "
            "permanent error (RFC 7208 §4.5), so none applies: merge them into one",
            merged_terms(spf.records),
        )
    terms = spf_terms(spf.records[0])
    if spf.lookups is not None and spf.lookups > SPF_LOOKUP_LIMIT:
        flat = flattened_terms(spf, keep=setup.sender.spf_include)
        return failed(
            f"{domain}'s SPF record needs {spf.lookups} DNS lookups, over the limit of "
            f"{SPF_LOOKUP_LIMIT} (RFC 7208 §4.6.4): receivers answer permerror, as if there "
            "were none. Replace the includes with the addresses they list",
            flat,
        )
    if spf.error:
        return failed(
            f"{domain}'s SPF record cannot be used: {spf.error}",
            with_term(terms, mechanism) if terms else [mechanism, "~all"],
        )
    if spf.all_result == "pass":
        return failed(
            f"{domain}'s SPF record ends in +all: every server on the internet may send as "
            f"{domain}",
            with_all(terms, "~all"),
        )
    if not authorises(spf, setup):
        return failed(
            f"{domain}'s SPF record does not authorise {who} ({mechanism}): its mail fails SPF",
            with_term(terms, mechanism),
        )
    lookups = f"{spf.lookups} of {SPF_LOOKUP_LIMIT} DNS lookups"
    if spf.all_result not in ("fail", "softfail"):
        return DnsCheck(
            name="spf",
            verdict=Verdict.WARN,
            found=f"{domain}'s SPF record authorises {who} ({lookups}) but does not end in "
            "~all or -all: mail from any other server is neither passed nor failed",
            record=spf_record(domain, with_all(terms, "~all")),
        )
    return DnsCheck(
        name="spf",
        verdict=Verdict.PASS,
        found=f"{spf.records[0]} — authorises {who}, {lookups}",
    )


def authorises(spf: SpfFacts, setup: SendingSetup) -> bool:
    """Whether the record lets the mailbox's sender send: its include at any depth, or for
    a server mailramp does not know, its host named (`a:host`) or all of its addresses
    inside the record's networks."""
    include = setup.sender.spf_include
    if include is not None:
        return include in spf.includes
    host = (setup.smtp_host or "").lower()
    if any(t.mechanism == "a" and t.value.lower() == host for t in spf.walk()):
        return True
    if not setup.smtp_addresses:
        return False
    networks = spf.networks
    return all(
        any(ipaddress.ip_address(address) in network for network in networks)
        for address in setup.smtp_addresses
    )


def judge_dkim(domain: str, keys: Sequence[DkimKey], sender: Sender) -> DnsCheck:
    if not keys:
        return DnsCheck(
            name="dkim",
            verdict=Verdict.FAIL,
            found=f"mailramp does not know {sender.name}'s DKIM selector: name yours "
            "(dkim_selectors) so the key can be checked",
            record=sender.dkim_record(domain, "<selector>"),
        )
    usable = sorted((key for key in keys if key.usable), key=lambda k: -(k.bits or 0))
    best = usable[0] if usable else None
    if best is not None and best.bits is not None:
        where = f"{best.selector}._domainkey.{domain}"
        kind = f"{(best.key_type or 'rsa').upper()} {best.bits}-bit key"
        if best.key_type == "ed25519" or best.bits >= DKIM_GOOD_BITS:
            return DnsCheck(name="dkim", verdict=Verdict.PASS, found=f"{where}: {kind}")
        verdict = Verdict.WARN if best.bits >= DKIM_MIN_BITS else Verdict.FAIL
        found = (
            f"{where}: {kind}; the providers now issue 2048-bit keys, rotate to one"
            if verdict is Verdict.WARN
            else f"{where}: {kind}; receivers ignore keys under {DKIM_MIN_BITS} bits (RFC 8301)"
        )
        return DnsCheck(
            name="dkim",
            verdict=verdict,
            found=found,
            record=sender.dkim_record(domain, best.selector),
        )
    broken = [key for key in keys if key.record is not None]
    checked = ", ".join(f"{key.selector}._domainkey.{domain}" for key in keys)
    if broken:
        found = "; ".join(f"{key.selector}._domainkey.{domain}: {key.error}" for key in broken)
    else:
        found = f"no DKIM key at {checked}: {sender.name}'s mail is not signed for {domain}"
    return DnsCheck(
        name="dkim",
        verdict=Verdict.FAIL,
        found=found,
        record=sender.dkim_record(domain, (broken or list(keys))[0].selector),
    )


def judge_dmarc(domain: str, dmarc: DmarcFacts, *, authenticated: bool) -> DnsCheck:
    reports = f"rua=mailto:dmarc-reports@{domain}"
    if dmarc.record is None or dmarc.tags is None:
        # Quarantine straight away only when SPF and DKIM already pass: otherwise the
        # domain's own mail would be quarantined, so start by watching the reports.
        policy = "quarantine" if authenticated else "none"
        return DnsCheck(
            name="dmarc",
            verdict=Verdict.FAIL,
            found=f"{domain} has no usable DMARC record"
            + (f" ({dmarc.error})" if dmarc.error else "")
            + ": Gmail and Yahoo require one of bulk senders",
            record=txt_record(f"_dmarc.{domain}", f"v=DMARC1; p={policy}; {reports}"),
        )
    location = dmarc.location or domain
    tags = dict(dmarc.tags)
    policy = tags.get("p", "none")
    problems = []
    if policy == "none":
        problems.append(
            "p=none: receivers still deliver mail that fails DMARC, so anyone can send as "
            f"{domain}; move to quarantine once the reports show your own mail passes"
        )
        tags["p"] = "quarantine"
    if "rua" not in tags:
        problems.append("no rua: no one receives the aggregate reports of who sends as you")
        tags["rua"] = reports.removeprefix("rua=")
    if problems:
        return DnsCheck(
            name="dmarc",
            verdict=Verdict.WARN,
            found=f"_dmarc.{location}: " + "; ".join(problems),
            record=txt_record(f"_dmarc.{location}", dmarc_text(tags)),
        )
    return DnsCheck(
        name="dmarc",
        verdict=Verdict.PASS,
        found=f"_dmarc.{location}: p={policy}, reports to {tags['rua']}",
    )


def judge_tracking(domain: str, setup: SendingSetup) -> DnsCheck:
    host = setup.tracking_host
    if host == domain or host.endswith(f".{domain}"):
        return DnsCheck(
            name="tracking_domain",
            verdict=Verdict.PASS,
            found=f"links and the open pixel use {host}, under {domain}",
        )
    if setup.tracking_domain and setup.tracking_domain.endswith(f".{domain}"):
        return DnsCheck(
            name="tracking_domain",
            verdict=Verdict.WARN,
            found=f"the tracking domain {setup.tracking_domain} is not in use yet"
            + (f": {setup.tracking_problem}" if setup.tracking_problem else ""),
            record=record_to_add(setup.tracking_domain, setup.public_host),
        )
    suggested = f"links.{domain}"
    return DnsCheck(
        name="tracking_domain",
        verdict=Verdict.WARN,
        found=f"links and the open pixel use {host}, shared with every sender of this server "
        f"and unlike {domain}; add the record, then set {suggested} as the mailbox's "
        "tracking domain",
        record=record_to_add(suggested, setup.public_host),
    )


# Building the records a check suggests. An SPF record is a list of terms: mechanisms with
# their qualifiers, then `all` (or `redirect=`) last.


def spf_terms(record: str) -> list[str]:
    """The terms of a `v=spf1` record, without the version."""
    return record.split()[1:]


def _is_all(term: str) -> bool:
    return term.lstrip("+-~?").lower() == "all" or term.lower().startswith("redirect=")


def with_all(terms: Sequence[str], ending: str) -> list[str]:
    """The terms with their `all` replaced by `ending`."""
    return [term for term in terms if not _is_all(term)] + [ending]


def with_term(terms: Sequence[str], term: str) -> list[str]:
    """The terms with `term` added before the `all` (kept, or `~all` when there was none
    or it was `+all`/`?all`)."""
    endings = [t for t in terms if _is_all(t)]
    ending = endings[0] if endings and endings[0].lstrip("+").lower() != "all" else "~all"
    if ending.startswith("?"):
        ending = "~all"
    kept = [t for t in terms if not _is_all(t) and t.lower() != term.lower()]
    return [*kept, term, ending]


def merged_terms(records: Iterable[str]) -> list[str]:
    """One record with every mechanism of `records` (each once, in order) and the strictest
    of their `all` terms, never one that lets everyone send."""
    kept: list[str] = []
    endings: set[str] = set()
    for record in records:
        for term in spf_terms(record):
            if _is_all(term):
                endings.add(term.lower())
            elif term.lower() not in {k.lower() for k in kept}:
                kept.append(term)
    return [*kept, "-all" if "-all" in endings else "~all"]


def flattened_terms(spf: SpfFacts, *, keep: str | None) -> list[str]:
    """The record with each include other than the sender's (`keep`) replaced by the
    `ip4`/`ip6` networks it lists, when it lists nothing that needs a lookup of its own; the
    sender's include stays, so its addresses keep following the provider's changes. Read
    from the published text, so a term the parse did not reach (it stops at the limit) is
    kept as written."""
    parsed = {term.value.lower(): term for term in spf.terms if term.mechanism == "include"}
    terms: list[str] = []
    for written in spf_terms(spf.records[0]):
        if _is_all(written):
            continue
        name, _, value = written.lstrip("+").partition(":")
        included = parsed.get(value.lower()) if name.lower() == "include" else None
        if included is not None and value.lower() != (keep or "").lower():
            inner = list(included.walk())
            if inner and all(t.mechanism in ("ip4", "ip6") for t in inner):
                terms += [f"{t.mechanism}:{t.value}" for t in inner if t.action == "pass"]
                continue
        terms.append(written)
    ending = {"fail": "-all", "softfail": "~all"}.get(spf.all_result or "", "~all")
    return [*dict.fromkeys(terms), ending]


def spf_record(domain: str, terms: Sequence[str]) -> str:
    return txt_record(domain, " ".join(["v=spf1", *terms]))


def dmarc_text(tags: dict[str, str]) -> str:
    """A DMARC record from its tags: `v` and `p` first, as RFC 7489 requires."""
    rest = [f"{name}={value}" for name, value in tags.items() if name not in ("v", "p")]
    return "; ".join(["v=DMARC1", f"p={tags.get('p', 'none')}", *rest])


def txt_record(name: str, text: str) -> str:
    """A TXT record as a zone file writes it, split into 255-character strings."""
    parts = [text[i : i + TXT_STRING_LIMIT] for i in range(0, len(text), TXT_STRING_LIMIT)]
    quoted = " ".join(f'"{part}"' for part in parts or [""])
    return f"{name}. TXT {quoted}"
