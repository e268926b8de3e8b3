"""What a delivery failure says: its enhanced status code (RFC 3463), the SMTP reply code
(RFC 5321 §4.2), and a reason from a small vocabulary, read from the codes the message
carries or, failing those, from the server's words.

The class digit decides what the failure means for the address: 5.x.x is permanent (the
address does not work: suppress it), 4.x.x transient (it may work next time). Where a
message carries no enhanced code, one is inferred from the reply code's class and the
reason its text gives (`550 Unknown user` → 5.1.1), as the enhanced code the server would
have sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class BounceReason(StrEnum):
    """Why a message was not delivered (docs/tracking.md lists what each covers)."""

    USER_UNKNOWN = "user_unknown"  # no such mailbox, or disabled / closed
    MAILBOX_FULL = "mailbox_full"
    DOMAIN_NOT_FOUND = "domain_not_found"  # no such domain, no MX, no route to it
    BLOCKED = "blocked"  # refused as spam, or the sender / its IP is on a block list
    POLICY = "policy"  # refused by a rule: authentication (SPF, DKIM, DMARC), relaying, content
    MESSAGE_TOO_LARGE = "message_too_large"
    EXPIRED = "expired"  # the sending server gave up retrying
    OTHER = "other"


# X.Y.Z, not part of a longer dotted number (an IP address, a version).
ENHANCED_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
FULL_CODE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
REPLY_ONLY = re.compile(r"[245][0-5]\d\b")
# An SMTP reply code where a server's answer starts: at a line's start, after "said:", a
# colon, a bracket or "host ... said"; "550-" is the first line of a multiline answer.
REPLY_CODE = re.compile(r"(?:^|[\s:(\[>;])([245][0-5]\d)(?=[ \-]|$)", re.MULTILINE)

# What the server's words say, tried in this order (the first that matches is the reason).
_REASON_WORDS: tuple[tuple[BounceReason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (
            BounceReason.EXPIRED,
            r"expired|retry time(?:out)? (?:exceeded|not reached)|too long in (?:the )?queue"
            r"|could not be delivered (?:for|within|in)|(?:gave|giving|given) up (?:after|retrying)"
            r"|delivery time|no longer (?:retrying|trying)|queue(?:d)? too long"
            r"|(?:failed|undeliverable|undelivered) (?:for|after) (?:the last )?\d+ (?:day|hour)",
        ),
        (
            BounceReason.MESSAGE_TOO_LARGE,
            r"too (?:large|big)|size (?:limit|exceed)|exceeds? (?:the )?(?:maximum|max|size"
            r"|allowed|message size)|message (?:size|length) exceed|larger than|message is larger",
        ),
        (
            BounceReason.MAILBOX_FULL,
            r"mail ?box (?:is )?full|\bquota|over ?quota|storage (?:space|allocation|limit)"
            r"|insufficient (?:disk )?(?:storage|space)|full mail ?box|exceeded (?:its |the )?"
            r"storage|disk full|mail ?box (?:has )?exceeded|mail ?box size|out of (?:disk )?space",
        ),
        (
            BounceReason.DOMAIN_NOT_FOUND,
            r"host (?:not found|unknown)|unknown host|domain (?:not found|does not exist|unknown"
            r"|name not found|is not (?:valid|registered))|no such domain|name or service not known"
            r"|unrouteable (?:mail )?domain|nxdomain|\bno mx\b|mx (?:record|lookup)"
            r"|dns (?:error|failure|lookup)|host or domain name not found|domain lookup failed"
            r"|invalid domain|null mx|does not accept (?:e-?)?mail|no route to (?:host|domain)"
            r"|unknown domain|domain (?:has )?no (?:mail|mx)",
        ),
        (
            BounceReason.BLOCKED,
            r"spam|block(?:ed|ing)\b|block ?list|black ?list|dnsbl|\brbl\b|spamhaus|spamcop"
            r"|reputation|listed (?:at|in|on|by)|\bjunk|bulk mail|banned|abus(?:e|ive)"
            r"|not accept(?:ing|ed)? mail from|rejected (?:due to|because of) (?:content|spam)"
            r"|client host .{0,80}rejected|ip .{0,40}(?:blocked|listed|rejected)|poor reputation"
            r"|suspicious|phish",
        ),
        (
            BounceReason.USER_UNKNOWN,
            r"user(?:name)? (?:is )?(?:unknown|not found|does ?n[o']t exist|not exist)"
            r"|unknown (?:user|recipient|address|mail ?box|local[- ]?part|alias)"
            r"|no such (?:user|mail ?box|recipient|address|person|account|local user)"
            r"|(?:mail ?box|account|recipient|address|user|addressee)(?: name)? (?:does|did)"
            r" ?n[o']t exist|(?:mail ?box|recipient|account|address|user) (?:is )?(?:not found"
            r"|unavailable|invalid|disabled|inactive|suspended|closed|deactivated|removed|deleted"
            r"|not valid|unknown|no longer (?:valid|active|available))|invalid (?:recipient"
            r"|mail ?box|address|user)|not (?:a )?valid (?:recipient|mail ?box|user|address)"
            r"|recipient (?:rejected|not found|invalid)|unrouteable address"
            r"|bad destination (?:mail ?box|address)|no mail ?box (?:here|by that name)"
            r"|account (?:is |has been )?(?:disabled|suspended|closed|locked|expired|deactivated"
            r"|terminated)|has been (?:disabled|suspended|deactivated|terminated)"
            r"|is not a (?:known|valid) user|undeliverable address|illegal alias"
            r"|(?:address|mail ?box|account) no longer|does not have an account"
            r"|recipient address rejected|not our customer|no such person|not exist",
        ),
        (
            BounceReason.POLICY,
            r"polic(?:y|ies)|not (?:permitted|allowed|authori[sz]ed)|relay(?:ing)? (?:denied"
            r"|not (?:permitted|allowed)|access denied|prohibited)|unauthenticated"
            r"|authenticat|\bspf\b|\bdkim\b|\bdmarc\b|access denied|administrative prohibition"
            r"|prohibited|reverse (?:dns|lookup)|\bptr\b|virus|malware|content rejected"
            r"|refused|rejected|denied|not accepted",
        ),
    )
)

_PERMANENT_WORDS = re.compile(
    r"permanent(?:ly)? (?:error|fail)|fatal error|unrecoverable|permanent failure", re.IGNORECASE
)
_TEMPORARY_WORDS = re.compile(
    r"temporar|try again later|will (?:be )?retr|still (?:trying|being retried)|deferred"
    r"|grey ?list|gray ?list|greylist|will continue (?:to )?(?:try|attempt)",
    re.IGNORECASE,
)

# The enhanced code that says what a reason is, when the message gives none (class apart).
_CODE_OF_REASON = {
    BounceReason.USER_UNKNOWN: "1.1",
    BounceReason.MAILBOX_FULL: "2.2",
    BounceReason.DOMAIN_NOT_FOUND: "1.2",
    BounceReason.BLOCKED: "7.1",
    BounceReason.POLICY: "7.1",
    BounceReason.MESSAGE_TOO_LARGE: "3.4",
    BounceReason.EXPIRED: "4.7",
    BounceReason.OTHER: "0.0",
}

# What a code's subject and detail say on their own (RFC 3463 §3; RFC 7505 for 1.10).
_REASON_OF_CODE = {
    "1.1": BounceReason.USER_UNKNOWN,  # bad destination mailbox address
    "1.3": BounceReason.USER_UNKNOWN,  # bad destination mailbox address syntax
    "1.6": BounceReason.USER_UNKNOWN,  # destination mailbox has moved
    "2.1": BounceReason.USER_UNKNOWN,  # mailbox disabled
    "1.2": BounceReason.DOMAIN_NOT_FOUND,  # bad destination system address
    "1.10": BounceReason.DOMAIN_NOT_FOUND,  # the domain accepts no mail (null MX)
    "4.4": BounceReason.DOMAIN_NOT_FOUND,  # unable to route
    "2.2": BounceReason.MAILBOX_FULL,
    "2.3": BounceReason.MESSAGE_TOO_LARGE,  # message length exceeds administrative limit
    "3.4": BounceReason.MESSAGE_TOO_LARGE,  # message too big for system
    "4.7": BounceReason.EXPIRED,  # delivery time expired
}


@dataclass(frozen=True)
class Verdict:
    """The enhanced status code of one failure and its reason; `inferred` when the message
    carried no enhanced code (then it is made from the reply code and the text)."""

    status: str
    reason: BounceReason
    reply_code: str | None = None
    inferred: bool = False

    @property
    def permanent(self) -> bool:
        """5.x.x: the address does not work."""
        return self.status.startswith("5")


def enhanced_codes(text: str) -> list[str]:
    """The enhanced status codes in `text`, in order."""
    return [".".join(match.groups()) for match in ENHANCED_CODE.finditer(text)]


def reply_codes(text: str) -> list[str]:
    """The SMTP reply codes where a server's answer starts in `text`, in order."""
    return REPLY_CODE.findall(text)


def reason_of_words(text: str) -> BounceReason:
    """The reason the server's words give (OTHER when they give none)."""
    for reason, words in _REASON_WORDS:
        if words.search(text):
            return reason
    return BounceReason.OTHER


def reason_of(status: str, text: str) -> BounceReason:
    """The reason of a failure with this enhanced code: the code's own meaning where it has
    one, else the words (a 5.7.1 refusal is `blocked` when they speak of spam or a block
    list, `policy` otherwise)."""
    _, subject_detail = status.split(".", 1)
    if subject_detail in _REASON_OF_CODE:
        return _REASON_OF_CODE[subject_detail]
    words = reason_of_words(text)
    if subject_detail.startswith("7.") and words not in (BounceReason.BLOCKED,):
        return BounceReason.POLICY
    return words


def verdict(text: str, *, status: str | None = None, default_class: str = "5") -> Verdict:
    """The verdict on one failure: `status` when the report states it, else the first
    enhanced code in `text` (the server's answer), else one inferred from the reply code's
    class (or `default_class`: a failure notice is final unless it says it is temporary, or
    that the server gave up retrying) and the reason the words give. A stated X.0.0
    gives way to a precise code of the same class in the server's answer."""
    codes = [code for code in enhanced_codes(text) if code[0] in "45"]
    replies = [code for code in reply_codes(text) if code[0] in "45"]
    if status and not FULL_CODE.fullmatch(status):
        # Some servers put an SMTP reply code ("550") where the enhanced code belongs.
        replies = [status[:3]] if REPLY_ONLY.match(status) else replies
        status = None
    reply = replies[0] if replies else None
    if status and status[:1] in "45":
        precise = next((c for c in codes if c[0] == status[0] and c[2:] != "0.0"), None)
        if status[2:] == "0.0" and precise:
            status = precise
        return Verdict(status, reason_of(status, text), reply)
    if codes:
        return Verdict(codes[0], reason_of(codes[0], text), reply)
    reason = reason_of_words(text)
    if reply:
        status_class = reply[0]
    elif _PERMANENT_WORDS.search(text):
        status_class = "5"
    elif reason is BounceReason.EXPIRED or _TEMPORARY_WORDS.search(text):
        # A server that gave up retrying was refused only for a time: the address may work.
        status_class = "4"
    else:
        status_class = default_class
    inferred = f"{status_class}.{_CODE_OF_REASON[reason]}"
    return Verdict(inferred, reason, reply, inferred=True)
