"""Mail domains, good and broken, served by a real DNS server on loopback (dnsmasq): what the
domain checks read. Google's and Microsoft's SPF records are served too (a stand-in zone
with documentation addresses), as a resolver on the internet would find them.

| domain | what is wrong |
|---|---|
| good.example | nothing: MX, SPF including Google's, 2048-bit DKIM, DMARC quarantine + rua |
| nospf.example | no SPF record |
| twospf.example | two SPF records |
| plusall.example | SPF ends in +all |
| lookups.example | SPF needs 11 DNS lookups |
| nodmarc.example | no DMARC record |
| pnone.example | DMARC p=none, no rua |
| nodkim.example | no DKIM key at Google's selector |
| weakdkim.example | a 1024-bit DKIM key |
| nomx.example | no MX record |
| own.example | its own SMTP server, authorised by address in SPF |
| ownbad.example | its own SMTP server, not in its SPF |
"""

from __future__ import annotations

import base64
import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.dns_server import DnsServer

GOOGLE_SPF = "v=spf1 ip4:203.0.113.0/24 ~all"
"""Stands in for the record at _spf.google.com (documentation addresses)."""
GOOD = "v=spf1 include:_spf.google.com ~all"
DMARC_GOOD = "v=DMARC1; p=quarantine; rua=mailto:dmarc@good.example"
PUBLIC_HOST = "track.mailramp.example"
LOOKUPS = 10
"""lookups.example includes this many domains besides Google's: 11 lookups in all."""


@functools.cache
def dkim_key(bits: int) -> str:
    """A DKIM key record with a fresh RSA public key of `bits` bits."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def _domain(
    name: str,
    *,
    spf: tuple[str, ...] = (GOOD,),
    dmarc: str | None = DMARC_GOOD,
    dkim_bits: int | None = 2048,
    mx: bool = True,
) -> tuple[dict[str, list[str]], dict[str, list[tuple[int, str]]]]:
    txt: dict[str, list[str]] = {}
    if spf:
        txt[name] = list(spf)
    if dmarc:
        txt[f"_dmarc.{name}"] = [dmarc.replace("good.example", name)]
    if dkim_bits:
        txt[f"google._domainkey.{name}"] = [dkim_key(dkim_bits)]
    return txt, ({name: [(1, "smtp.google.com")]} if mx else {})


def start_mail_zone() -> DnsServer:
    """The DNS server, answering for every domain in the table above."""
    txt: dict[str, list[str]] = {"_spf.google.com": [GOOGLE_SPF]}
    mx: dict[str, list[tuple[int, str]]] = {}
    includes = " ".join(f"include:n{n}.lookups.example" for n in range(1, LOOKUPS + 1))
    for n in range(1, LOOKUPS + 1):
        txt[f"n{n}.lookups.example"] = [f"v=spf1 ip4:198.51.100.{n} -all"]
    domains = [
        _domain("good.example"),
        _domain("nospf.example", spf=()),
        _domain(
            "twospf.example",
            spf=("v=spf1 include:_spf.google.com ~all", "v=spf1 ip4:192.0.2.10 -all"),
        ),
        _domain("plusall.example", spf=("v=spf1 include:_spf.google.com +all",)),
        _domain("lookups.example", spf=(f"v=spf1 include:_spf.google.com {includes} ~all",)),
        _domain("nodmarc.example", dmarc=None),
        _domain("pnone.example", dmarc="v=DMARC1; p=none"),
        _domain("nodkim.example", dkim_bits=None),
        _domain("weakdkim.example", dkim_bits=1024),
        _domain("nomx.example", mx=False),
        _domain("own.example", spf=("v=spf1 ip4:192.0.2.0/24 -all",)),
        _domain("ownbad.example", spf=("v=spf1 ip4:198.51.100.0/24 -all",)),
    ]
    for records, exchanges in domains:
        txt.update(records)
        mx.update(exchanges)
    return DnsServer.start(
        addresses={
            PUBLIC_HOST: "127.0.0.1",
            "smtp.own.example": "192.0.2.25",
            "smtp.ownbad.example": "192.0.2.26",
        },
        aliases={"links.good.example": PUBLIC_HOST},
        txt=txt,
        mx=mx,
        zones=("google.com",),
    )
