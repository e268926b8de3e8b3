"""Bounces in plain words: the notices that carry no machine-readable report (qmail, older
Exim and Sendmail, Exchange 2003, Domino, Yahoo, Gmail's and the Japanese carriers'
plain-text notices).

A message is such a notice when it names failed recipients in `X-Failed-Recipients` (Exim),
or says so in two ways among: it comes from a mail system (MAILER-DAEMON, postmaster, a
null Return-Path), its subject is a failure notice's, its text reads as a server's refusal,
it returns a message as an attachment. The failed recipients are, in this order of trust:
`X-Failed-Recipients`; the addresses the text sets apart — on a line of their own (`<a@b>:`
in qmail, an indented address in Exim and Exchange), after `RCPT TO:` or before `... User
unknown` (Sendmail); any other address in the text; and last the returned message's `To`.
Each recipient's status and reason come from the words that follow its address.
"""

from __future__ import annotations

import re
from email.message import Message

from mailramp.tracking.inbound.models import Failure
from mailramp.tracking.inbound.parts import address_of, addresses, header, is_daemon
from mailramp.tracking.inbound.status import enhanced_codes, reply_codes, verdict

_SUBJECT = re.compile(
    r"undeliver|undelivered|not (?:be )?delivered|delivery (?:status|failure|failed|has failed"
    r"|problem|report|error|notification|incomplete)|mail delivery|returned mail|failure notice"
    r"|non[- ]?deliver|nondeliverable|mail system error|message (?:not delivered|delivery|status)"
    r"|could not (?:be )?(?:deliver|sent)|unable to deliver|delivery notification|bounce"
    r"|unzustellbar|nicht zustellbar|non remis|no entregado|non recapitato|onbestelbaar"
    r"|niet (?:bezorgd|afgeleverd)|ne peut être|未配信|配信|エラー|不能|失敗|returned to sender"
    r"|permanent (?:error|failure)|rejected|warning: message|delayed mail|mail could not"
    r"|failed delivery|delivery warning|mail failure|mail error|error notification",
    re.IGNORECASE,
)
_DAEMON_NAME = re.compile(
    r"mail ?delivery (?:sub)?system|mailer[- ]?daemon|post ?master|mail administrator"
    r"|system administrator|mail ?(?:system|server)|delivery status|mail ?router",
    re.IGNORECASE,
)
_FAILURE_WORDS = re.compile(
    r"could not be delivered|couldn't be delivered|(?:was|were) not delivered|undeliverable"
    r"|delivery (?:to the following|has failed|failed|to these)|permanent(?:ly)? (?:error|fail)"
    r"|unable to deliver|wasn't able to deliver|not able to deliver|failed recipient"
    r"|following (?:address|recipient)|could not be reached|user unknown|no such user"
    r"|does not exist|rejected|returned to sender|delivery failure|giving up|gave up"
    r"|could not deliver|couldn't deliver|error (?:delivering|occurred)|mailbox (?:is )?full"
    r"|over quota|host unknown|not found|smtp error|remote (?:host|server|mail server) said"
    r"|said:|transcript of session|malformed (?:recipient )?address|配信|送信できません"
    r"|届きませんでした",
    re.IGNORECASE,
)
_DELAY_WORDS = re.compile(
    r"(?:has|have) not (?:yet )?been delivered|not yet been delivered|still (?:trying|retry"
    r"|undelivered|being retried)|will (?:continue (?:to )?)?(?:try|retry|attempt)"
    r"|delivery (?:is )?delayed|temporarily (?:deferred|delayed)|no action is required",
    re.IGNORECASE,
)
_FINAL_WORDS = re.compile(
    r"permanent|giving up|gave up|given up|could not be delivered|will not be delivered"
    r"|failed permanently|has been returned|(?:was|were) not delivered|delivery has failed",
    re.IGNORECASE,
)
# Where the text sets an address apart as the one that failed.
_SET_APART = re.compile(
    r"^[ \t>*-]*<?(?P<line>[^\s<>@]+@[^\s<>]+?)>?(?:[ \t]*:|[ \t]*\.\.\.|[ \t]+on\b|[ \t]*[(\[]|"
    r"[ \t]*$|[ \t]+[\"(]?(?:user|recipient|mailbox|unknown|said|host|smtp|permanent|error"
    r"|no such|deferred))"
    r"|RCPT[ \t]+TO:?[ \t]*<(?P<rcpt>[^\s<>]+)>",
    re.IGNORECASE | re.MULTILINE,
)


def is_failure_notice(message: Message, report: str, *, returns_message: bool) -> bool:
    """Whether a message without a machine-readable report is a bounce (or a delay
    notice), by the signs in the module docstring; `returns_message` when it attaches a
    message (or its headers) as bounces return the original."""
    if header(message, "X-Failed-Recipients"):
        return True
    sender = header(message, "From")
    from_system = (
        is_daemon(address_of(sender))
        or bool(_DAEMON_NAME.search(sender))
        or header(message, "Return-Path") == "<>"
    )
    subject = header(message, "Subject")
    failure_subject = bool(_SUBJECT.search(subject)) and not subject.lower().startswith("re:")
    failure_text = bool(_FAILURE_WORDS.search(report)) or bool(
        enhanced_codes(report) and reply_codes(report)
    )
    return sum((from_system, failure_subject, failure_text, returns_message)) >= 2


def is_delay_notice(report: str) -> bool:
    """Whether the notice says the server is still trying (not a bounce)."""
    return bool(_DELAY_WORDS.search(report)) and not _FINAL_WORDS.search(report)


def failed_recipients(message: Message, report: str, returned: Message | None) -> list[str]:
    """The recipients the notice says failed, most trusted sign first (module docstring).
    An address merely mentioned is not taken when it is the notice's own sender or
    addressee, or the returned message's sender (who is notified, not failed)."""
    excluded = {
        address
        for name in ("From", "To", "Sender", "Reply-To")
        if (address := address_of(header(message, name)))
    }
    if returned is not None and (sender := address_of(header(returned, "From"))):
        excluded.add(sender)
    listed = [
        address
        for value in (header(message, "X-Failed-Recipients"),)
        for address in addresses(value)
    ]
    if listed:
        return listed
    set_apart: list[str] = []
    for match in _SET_APART.finditer(report):
        candidate = (match.group("line") or match.group("rcpt") or "").strip(".,;:")
        found = addresses(candidate)
        if found and found[0] not in set_apart:
            set_apart.append(found[0])
    if set_apart:
        return set_apart
    anywhere = [address for address in addresses(report) if address not in excluded]
    if anywhere:
        return anywhere[:1]
    if returned is not None and (to := address_of(header(returned, "To"))):
        return [to]
    return []


def failures_in(report: str, recipients: list[str], *, delayed: bool) -> list[Failure]:
    """A failure for each recipient, judged from the words after its address (up to the
    next recipient's), or from the whole report when they say nothing."""
    lowered = report.lower()
    starts = [lowered.find(recipient) for recipient in recipients]
    default_class = "4" if delayed else "5"
    failures = []
    for recipient, start in zip(recipients, starts, strict=True):
        words = report
        if len(recipients) > 1 and start >= 0:
            later = [s for s in starts if s > start]
            words = report[start : min(later) if later else len(report)]
        judged = verdict(words, default_class=default_class)
        failures.append(
            Failure(
                recipient=recipient,
                status=judged.status,
                reason=judged.reason,
                reply_code=judged.reply_code,
                diagnostic=_diagnostic(words),
                inferred=judged.inferred,
            )
        )
    return failures


def _diagnostic(words: str) -> str | None:
    lines = [line.strip() for line in words.splitlines() if line.strip()]
    return " ".join(lines)[:500] or None
