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
from mailramp.tracking.inbound.status import (
    BounceReason,
    enhanced_codes,
    reason_of_words,
    reply_codes,
    verdict,
)

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
    r"|said:|transcript of session|malformed (?:recipient )?address|failed mail|mail failed"
    r"|returning (?:message )?to sender|has been returned|failed addresses|unknown host"
    r"|配信|送信できません"
    r"|届きませんでした",
    re.IGNORECASE,
)
# A notice that goes on trying says so; that outranks words that sound final.
_STILL_TRYING = re.compile(
    r"will (?:continue to |keep )?(?:retry|try again|trying|attempt (?:delivery|to deliver|again))"
    r"|will continue (?:to )?(?:try|attempt)|attempts will continue|will be retried"
    r"|still (?:trying|being retried)|warning message only|no action is required"
    r"|(?:you )?do not need to resend",
    re.IGNORECASE,
)
_DELAY_WORDS = re.compile(
    r"(?:has|have) not yet been delivered|not yet been delivered|still undelivered"
    r"|(?:has been|is) delayed|delivery (?:is )?delayed|temporarily (?:deferred|delayed)",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"\(delay(?:ed)?\)|^\s*warning:|delayed mail|delivery delayed", re.I)
_FINAL_WORDS = re.compile(
    r"permanent|giving up|gave up|given up|could not be delivered|will not be delivered"
    r"|failed permanently|has been returned|(?:was|were) not delivered|delivery has failed",
    re.IGNORECASE,
)
# Where the text sets an address apart as the one that failed: on a line of its own (maybe
# followed by a colon, "...", "on <date>", a bracketed reason or the reason's first words),
# after RCPT TO:, after a reply code ("553 5.3.0 <a@b>... no such user"), or after a
# reason and a colon ("Unknown user: a@b").
_SET_APART = re.compile(
    r"^[ \t>*-]*<?([^\s<>@]+@[^\s<>]+?)>?(?:[ \t]*:|[ \t]*\.\.\.|[ \t]+on\b|[ \t]*[(\[]|"
    r"[ \t]*$|[ \t]+[\"(]?(?:user|recipient|mailbox|unknown|said|host|smtp|permanent|error"
    r"|no such|deferred))"
    r"|RCPT[ \t]+TO:?[ \t]*<([^\s<>]+)>"
    r"|^[ \t]*[45]\d\d[ -](?:[45]\.\d{1,3}\.\d{1,3}[ \t]+)?<([^\s<>]+@[^\s<>]+)>"
    r"|(?:unknown|invalid) (?:user|recipient|address)s?:[ \t]*<?([^\s<>]+@[^\s<>]+?)>?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
# What an address merely mentioned is not: a quoted sender line, or a sender. (A quoted
# `To:` line may be the notice's summary of the message: one-to-one, it is the recipient.)
_NOT_FAILED = re.compile(
    r"^[ \t>]*(?:from|cc|reply-to|sender|return-path)[ \t]*:[^\n]*$"
    r"|(?:sent by|mail from|message from|from|sender)[ \t:]*<?[^\s<>@]+@[^\s<>]+",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER = re.compile(r"\s*(?:re|aw|sv|antw)\s*:", re.IGNORECASE)
_NOTICE_SUBMITTED = re.compile(r"auto-generated\s*\((?:failure|delay)", re.IGNORECASE)
_FAILURE_REASONS = frozenset(
    {BounceReason.USER_UNKNOWN, BounceReason.MAILBOX_FULL, BounceReason.DOMAIN_NOT_FOUND}
)


def is_failure_notice(message: Message, report: str, *, returns_message: bool) -> bool:
    """Whether a message without a machine-readable report is a bounce (or a delay
    notice), by the signs in the module docstring; `returns_message` when it returns the
    original (attached, or quoted after the report)."""
    if header(message, "X-Failed-Recipients"):
        return True
    sender = header(message, "From")
    return_path = header(message, "Return-Path")
    from_system = (
        is_daemon(address_of(sender))
        or bool(_DAEMON_NAME.search(sender))
        or sender.strip() in ("<>", "")
        or return_path == "<>"
        or is_daemon(address_of(return_path))
        # RFC 3834 §5: "auto-generated (failure)" and "(delay)" mark delivery notices.
        or bool(_NOTICE_SUBMITTED.search(header(message, "Auto-Submitted")))
    )
    subject = header(message, "Subject")
    failure_subject = bool(_SUBJECT.search(subject)) and not _ANSWER.match(subject)
    failure_text = (
        bool(_FAILURE_WORDS.search(report))
        or bool(enhanced_codes(report) and reply_codes(report))
        or reason_of_words(report) in _FAILURE_REASONS
    )
    return sum((from_system, failure_subject, failure_text, returns_message)) >= 2


def is_delay_notice(report: str, subject: str) -> bool:
    """Whether the notice says the server is still trying (not a bounce): it says it will
    go on trying, or says the message is delayed and nothing that reads as final (no
    permanent code, no unknown user or domain)."""
    if _STILL_TRYING.search(report):
        return True
    delayed = bool(_DELAY_WORDS.search(report) or _DELAY_SUBJECT.search(subject))
    if not delayed or _FINAL_WORDS.search(report):
        return False
    # A permanent refusal in the report outranks a subject that says "Warning:".
    permanent = any(code.startswith("5") for code in enhanced_codes(report) + reply_codes(report))
    return not permanent and reason_of_words(report) not in _FAILURE_REASONS


def failed_recipients(message: Message, report: str, returned: Message | None) -> list[str]:
    """The recipients the notice says failed, most trusted sign first (module docstring).
    An address merely mentioned is not taken when it is the notice's own sender or
    addressee, the returned message's sender (who is notified, not failed), on a quoted
    header line, or named as a sender ("a message sent by ...", "mail from ...")."""
    listed = addresses(header(message, "X-Failed-Recipients"))
    if listed:
        return listed
    set_apart: list[str] = []
    for match in _SET_APART.finditer(report):
        candidate = next(group for group in match.groups() if group).strip(".,;:")
        found = addresses(candidate)
        if found and found[0] not in set_apart:
            set_apart.append(found[0])
    if set_apart:
        return [_mailed(address, report) for address in set_apart]
    excluded = {
        address
        for name in ("From", "To", "Sender", "Reply-To")
        if (address := address_of(header(message, name)))
    }
    if returned is not None and (sender := address_of(header(returned, "From"))):
        excluded.add(sender)
    mentioned = _NOT_FAILED.sub("", report)
    anywhere = [address for address in addresses(mentioned) if address not in excluded]
    if anywhere:
        return anywhere[:1]
    if returned is not None and (to := address_of(header(returned, "To"))) not in excluded:
        return [to] if to else []
    return []


def _mailed(address: str, report: str) -> str:
    """The address the sender mailed, where the report shows it was forwarded: Sendmail's
    and Postfix's "a@b (expanded from: c@d)"."""
    expanded = re.search(
        re.escape(address) + r">?\s*\(expanded from:?\s*<?([^\s<>()]+@[^\s<>()]+?)>?\)",
        report,
        re.IGNORECASE,
    )
    return expanded.group(1).lower() if expanded else address


def failures_in(report: str, recipients: list[str], *, delayed: bool) -> list[Failure]:
    """A failure for each recipient, judged from the words after its address (up to the
    next recipient's), or from the whole report when they say nothing."""
    lowered = report.lower()
    starts = [lowered.find(recipient) for recipient in recipients]
    default_class = "4" if delayed else "5"
    failures = []
    for recipient, start in zip(recipients, starts, strict=True):
        words = report
        if start >= 0:
            later = [s for s in starts if s > start]
            after = report[start : min(later) if later else len(report)]
            if len(recipients) > 1 or enhanced_codes(after) or reply_codes(after):
                words = after
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
