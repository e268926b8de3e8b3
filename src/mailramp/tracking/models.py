"""The `email_tracking` document: one per (campaign, recipient, step), and the
`campaign_recipients` document: one per (campaign, recipient).

An email record is both the send-queue entry (status, scheduled_at, lease) and the tracking record
(Message-ID and the first time of each event). Event counts beyond the first live in the
event log; the `*_at` fields here are the firsts, which the metrics count.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from mailramp.kit.ids import new_object_id
from mailramp.kit.types import CampaignIdStr, ObjectIdStr, Record, UTCDateTime


class TrackingStatus(StrEnum):
    """Where one email is. Final states end the record's life in the queue."""

    PENDING = "pending"  # waiting for scheduled_at
    WAITING = "waiting"  # a follow-up waiting for the person's previous step to be sent
    SENDING = "sending"  # leased, Message-ID fixed, handed to the provider or about to be
    SENT = "sent"  # the provider accepted it
    FAILED = "failed"  # transient errors exhausted the attempts
    BOUNCED = "bounced"  # permanent rejection at send time or a delivery-status report
    UNCERTAIN = "uncertain"  # a lease expired mid-send: maybe sent; never resent by itself
    EXPIRED = "expired"  # the campaign window closed before it was sent
    CANCELLED = "cancelled"  # the campaign was cancelled before it was sent
    SUPPRESSED = "suppressed"  # the address unsubscribed or bounced in another campaign
    STOPPED = "stopped"  # the person's sequence ended (a reply, bounce, opt-out, by hand)


FINAL_TRACKING_STATUSES = frozenset(
    {
        TrackingStatus.SENT,
        TrackingStatus.FAILED,
        TrackingStatus.BOUNCED,
        TrackingStatus.UNCERTAIN,
        TrackingStatus.EXPIRED,
        TrackingStatus.CANCELLED,
        TrackingStatus.SUPPRESSED,
        TrackingStatus.STOPPED,
    }
)
UNSENT_STATUSES = (TrackingStatus.PENDING, TrackingStatus.WAITING)
"""An email not handed to a worker yet: what a stop, a cancel or a closing window ends."""


class EventMoments(Record):
    """When anything first happened: to one email (`EmailTracking`), or to any email of one
    person of a campaign (`CampaignRecipient`)."""

    sent_at: UTCDateTime | None = None
    delivered_at: UTCDateTime | None = None
    opened_at: UTCDateTime | None = None
    clicked_at: UTCDateTime | None = None
    replied_at: UTCDateTime | None = None
    bounced_at: UTCDateTime | None = None
    unsubscribed_at: UTCDateTime | None = None
    human_opened_at: UTCDateTime | None = None
    human_clicked_at: UTCDateTime | None = None
    auto_replied_at: UTCDateTime | None = None
    complained_at: UTCDateTime | None = None


EVENT_TIMESTAMPS = tuple(EventMoments.model_fields)
"""A record's timestamps of what happened to its email, each set once, by the first event
of its kind (tracking/events.py says which)."""


class EmailTracking(EventMoments):
    """One email of one campaign: the recipient's step `step`."""

    id: ObjectIdStr = Field(alias="_id")
    campaign_id: CampaignIdStr
    user_id: ObjectIdStr
    mailbox_id: ObjectIdStr
    recipient_email: str
    merge_variables: dict[str, Any] = Field(default_factory=dict)
    variant: int = 0
    """Which variant of its step this email is (0 = A; `Campaign.variants`)."""
    step: int = 1
    """Which step of the sequence it is: 1 is the first email, then the number of a
    follow-up (`FollowUp.step`)."""
    timezone: str | None = None
    """The recipient's own time zone (an IANA name, from the file's `timezone` column):
    the campaign's sending window applies there. None: the window's own."""
    status: TrackingStatus = TrackingStatus.PENDING
    scheduled_at: UTCDateTime | None = None
    attempts: int = 0
    next_attempt_at: UTCDateTime | None = None
    lease_owner: str | None = None
    lease_expires_at: UTCDateTime | None = None
    message_id: str | None = None
    last_error: str | None = None
    created_at: UTCDateTime
    updated_at: UTCDateTime

    def merge_values(self) -> dict[str, object]:
        """What a message's placeholders can name: the CSV columns, and `email`."""
        return {**self.merge_variables, "email": self.recipient_email}


class CampaignRecipient(EventMoments):
    """One person of one campaign, whatever number of emails they get: the first time
    anything happened to any of their emails (the `campaign_matrix` counters count these,
    so a campaign counts people), and why their sequence stopped."""

    id: ObjectIdStr = Field(alias="_id")
    campaign_id: CampaignIdStr
    user_id: ObjectIdStr
    recipient_email: str
    stopped_at: UTCDateTime | None = None
    lead_status: str | None = None
    """Where the conversation stands: a `conversations.models.LeadStatus` value or the
    name of one of the user's own labels; None until someone sets it."""
    lead_status_at: UTCDateTime | None = None
    created_at: UTCDateTime
    updated_at: UTCDateTime

    @classmethod
    def of(cls, record: EmailTracking) -> CampaignRecipient:
        """The person an email is to, with what already happened to that email."""
        return cls(
            id=new_object_id(),
            campaign_id=record.campaign_id,
            user_id=record.user_id,
            recipient_email=record.recipient_email,
            created_at=record.created_at,
            updated_at=record.updated_at,
            **{name: getattr(record, name) for name in EVENT_TIMESTAMPS},
        )


class EventType(StrEnum):
    """What can happen to an email, in the event log (tracking/events.py says what each
    does)."""

    QUEUED = "queued"  # the email joined the queue (an import, a resend of an uncertain one)
    SENT = "sent"  # the provider accepted it (SMTP 250 to DATA, Graph 202, Gmail 200)
    DELIVERED = "delivered"  # a delivery report: the receiving server took it
    FAILED = "failed"  # passing errors outlasted the attempts: it was not sent
    UNCERTAIN = "uncertain"  # its worker's lease ran out mid-send: maybe sent
    EXPIRED = "expired"  # the campaign window closed before it was sent
    CANCELLED = "cancelled"  # the campaign was cancelled before it was sent
    SUPPRESSED = "suppressed"  # the address was on the suppression list when its turn came
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    DELAY = "delay"  # a delivery-status report saying the message is delayed, not lost
    COMPLAINT = "complaint"  # the recipient reported it as spam (a feedback-loop report)
    STOPPED = "stopped"  # the person's sequence ended (an answer, a bounce, by hand): this
    # email, not sent yet, never will be
    LEAD_STATUS = "lead_status"  # the person's lead status changed (details: from, to)
    UNSUBSCRIBE_PAGE = "unsubscribe_page"  # the unsubscribe link was fetched: its page shown,
    # nothing changed (a person about to press its button, or a link scanner)
    TRAP = "trap"  # the campaign's trap link, which no person can see, was fetched


class UnmatchedInbound(Record):
    """A bounce or complaint found in a mailbox's inbox that matches no email its owner
    sent (no Message-ID of ours, and no email to the address it names in the last
    MATCH_WINDOW): kept for the owner to see, never dropped."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    mailbox_id: ObjectIdStr
    kind: str  # hard_bounce, soft_bounce or complaint
    recipient: str | None = None
    status: str | None = None
    reason: str | None = None
    sender: str | None = None
    subject: str | None = None
    message_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    received_at: UTCDateTime


class AttachmentInfo(Record):
    """A file a conversation's message carried: `kept` False when it was over what the
    inbox keeps (tracking/inbound/content.py), so it can only be read in the mailbox."""

    id: ObjectIdStr
    filename: str
    content_type: str
    size: int
    kept: bool


class ConversationMessage(Record):
    """One message of a conversation with a person of a campaign: their reply or automatic
    reply (`direction` "in"), or the user's answer from the inbox ("out"). The thread is
    the person: (`campaign_id`, `recipient_email`). `text` is what was written, `quoted`
    the history the client quoted, `html` the sanitised HTML (None if there was none, or
    too much); `problem` says why the body is not there."""

    id: ObjectIdStr = Field(alias="_id")
    user_id: ObjectIdStr
    mailbox_id: ObjectIdStr
    campaign_id: CampaignIdStr
    record_id: ObjectIdStr
    """The campaign email it answers (or, for an answer, the person's latest)."""
    recipient_email: str
    direction: str  # in, out
    kind: str  # reply, auto_reply, answer
    message_id: str | None = None
    references: list[str] = Field(default_factory=list)
    sender: str = ""
    to: str = ""
    subject: str = ""
    sent_at: UTCDateTime | None = None
    received_at: UTCDateTime
    text: str = ""
    quoted: str = ""
    html: str | None = None
    attachments: list[AttachmentInfo] = Field(default_factory=list)
    size: int = 0
    problem: str | None = None
    read_at: UTCDateTime | None = None
    status: str | None = None
    """An answer's: `sending` (stored with its Message-ID before it left), then `sent`,
    `failed` (refused: it did not leave) or `uncertain` (the connection broke while it was
    handed over: it may have left). Never sent twice."""
    error: str | None = None
    track_opens: bool = False
    """An answer the user asked to track: it carries a pixel (and so an HTML part)."""
    opened_at: UTCDateTime | None = None
    """When a tracked answer's pixel first loaded (by a person or a machine)."""
    human_opened_at: UTCDateTime | None = None
    """When a person, not a privacy proxy, first opened it."""


ANSWER_STATUSES = ("sending", "sent", "failed", "uncertain")


class ConversationFile(Record):
    """The content of a kept attachment."""

    id: ObjectIdStr = Field(alias="_id")
    message_id: ObjectIdStr
    user_id: ObjectIdStr
    data: bytes


BACKFILLED = "backfilled"
"""The `details` key of an event an upgrade wrote (its value: the record field)."""


SETTLING = "settling"
"""The `machine_reason` of an open or click not decided yet: counted as a machine's (never
as a person's) until it settles."""


class EmailEvent(Record):
    """One entry of the event log. `details` holds what the request or message said (user
    agent, link, IP fingerprint, DSN status) — untrusted data, escaped wherever shown.

    `seq` numbers a user's events 1, 2, 3… in the order they were committed (given by the
    store when the event is appended, in the same unit of work as the change it records):
    the cursor of `GET /api/v1/events?after=` and of the webhooks."""

    id: ObjectIdStr = Field(alias="_id")
    seq: int | None = None
    record_id: ObjectIdStr
    campaign_id: CampaignIdStr
    user_id: ObjectIdStr
    recipient_email: str | None = None
    type: EventType
    occurred_at: UTCDateTime
    machine: bool = False
    machine_reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def settling(self) -> bool:
        """Whether a person or a machine made it is not decided yet (tracking/classify.py:
        an open or click that looks like a person's, inside its settling window)."""
        return self.machine_reason == SETTLING

    @property
    def backfilled(self) -> bool:
        """Written by an upgrade for a moment a record held from before the event log:
        history, which the webhooks never push."""
        return BACKFILLED in self.details

    @classmethod
    def about(
        cls,
        record: EmailTracking,
        kind: EventType,
        at: datetime,
        *,
        details: dict[str, Any],
        machine: str | None = None,
    ) -> EmailEvent:
        """A new event of `record`'s email at `at`; `machine` names the machine that made it
        (a privacy proxy, a link scanner), None for a person."""
        return cls(
            id=new_object_id(),
            record_id=record.id,
            campaign_id=record.campaign_id,
            user_id=record.user_id,
            recipient_email=record.recipient_email,
            type=kind,
            occurred_at=at,
            machine=machine is not None,
            machine_reason=machine,
            details=details,
        )
