"""Who sends a mailbox's mail, as its domain's DNS must say so: the SPF mechanism that
authorises the provider, the DKIM selectors it signs with, and the MX records that bring
replies back. Known providers are named from their own setup guides; any other SMTP server
is authorised by its host name (`a:smtp.example.net`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailramp.kit.dns import normal_name
from mailramp.mailboxes.models import Mailbox, Provider

GENERIC_SELECTORS = ("default", "mail", "dkim", "selector1", "s1", "k1")
"""Selectors tried for an SMTP server mailramp does not know (a user can name theirs)."""


@dataclass(frozen=True)
class Sender:
    """One sending service, as DNS must describe it."""

    name: str
    spf_include: str | None
    """The domain its customers include in SPF; None: authorised by the SMTP host itself."""
    dkim_selectors: tuple[str, ...]
    mx_hosts: tuple[tuple[int, str], ...] = ()
    """Its inbound servers, `{dashed}` standing for the domain with dots as dashes."""
    dkim_how: str = "the public key your provider gives you"

    def spf_mechanism(self, smtp_host: str | None) -> str:
        """The SPF term that authorises this sender."""
        if self.spf_include:
            return f"include:{self.spf_include}"
        if not smtp_host:
            return "mx"
        try:
            address = ipaddress.ip_address(smtp_host)
        except ValueError:
            return f"a:{smtp_host}"
        return f"ip{address.version}:{address}"

    def mx_records(self, domain: str, fallback_host: str | None) -> list[str]:
        """The MX records that route the domain's mail to this service."""
        dashed = domain.replace(".", "-")
        hosts = [(pref, host.format(dashed=dashed)) for pref, host in self.mx_hosts]
        if not hosts:
            hosts = [(10, fallback_host or f"mail.{domain}")]
        return [f"{domain}. MX {pref} {host}." for pref, host in hosts]

    def dkim_record(self, domain: str, selector: str) -> str:
        """The DKIM record to publish at `selector` (the key itself comes from the sender)."""
        if self is MICROSOFT:
            dashed = domain.replace(".", "-")
            return (
                f"{selector}._domainkey.{domain}. CNAME "
                f"{selector}-{dashed}._domainkey.<your tenant>.onmicrosoft.com. "
                "(turn DKIM on in Microsoft Defender → Email authentication)"
            )
        return f'{selector}._domainkey.{domain}. TXT "v=DKIM1; k=rsa; p=<{self.dkim_how}>"'


GOOGLE = Sender(
    "Google Workspace",
    "_spf.google.com",
    ("google",),
    ((1, "smtp.google.com"),),
    "the key from Google Admin → Apps → Google Workspace → Gmail → Authenticate email",
)
MICROSOFT = Sender(
    "Microsoft 365",
    "spf.protection.outlook.com",
    ("selector1", "selector2"),
    ((0, "{dashed}.mail.protection.outlook.com"),),
)
_KNOWN_SMTP = (
    (("smtp.gmail.com", "smtp-relay.gmail.com", ".google.com"), GOOGLE),
    (("smtp.office365.com", "smtp-mail.outlook.com", ".outlook.com"), MICROSOFT),
    (
        (".zoho.com", ".zoho.eu", ".zoho.in"),
        Sender(
            "Zoho Mail",
            "zohomail.com",
            ("zmail",),
            ((10, "mx.zoho.com"), (20, "mx2.zoho.com"), (50, "mx3.zoho.com")),
        ),
    ),
    (
        (".fastmail.com", ".messagingengine.com"),
        Sender(
            "Fastmail",
            "spf.messagingengine.com",
            ("fm1", "fm2", "fm3"),
            ((10, "in1-smtp.messagingengine.com"), (20, "in2-smtp.messagingengine.com")),
        ),
    ),
    ((".amazonaws.com",), Sender("Amazon SES", "amazonses.com", ())),
    ((".sendgrid.net",), Sender("SendGrid", "sendgrid.net", ("s1", "s2"))),
    ((".mailgun.org",), Sender("Mailgun", "mailgun.org", ("smtp", "mailo", "k1"))),
    ((".postmarkapp.com",), Sender("Postmark", "spf.mtasv.net", ())),
)


def sender_for(mailbox: Mailbox) -> Sender:
    """Who sends this mailbox's mail: its OAuth provider, a known SMTP service by host name,
    or its own SMTP server."""
    if mailbox.provider is Provider.GMAIL:
        return GOOGLE
    if mailbox.provider is Provider.OUTLOOK:
        return MICROSOFT
    host = normal_name(mailbox.smtp_host or "")
    for names, sender in _KNOWN_SMTP:
        if any(host == name or (name.startswith(".") and host.endswith(name)) for name in names):
            return sender
    return Sender(f"your SMTP server {host}", None, GENERIC_SELECTORS)


def selectors_for(mailbox: Mailbox) -> tuple[str, ...]:
    """The DKIM selectors to look at: the ones the user named, else the sender's."""
    return tuple(mailbox.dkim_selectors) or sender_for(mailbox).dkim_selectors
