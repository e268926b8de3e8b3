"""The indexes of every collection, as the schema lists them and the queries need them,
created idempotently at start-up (create_index with an unchanged spec is a no-op).

Optional unique fields (a user's email, Clerk id) get partial unique indexes over
documents where the field is a string, so the many documents without one never collide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mailramp.auth.models import WEBHOOK_MEMORY
from mailramp.storage.mongo.codec import (
    API_KEYS,
    CAMPAIGNS,
    CONVERSATION_FILES,
    CONVERSATION_MESSAGES,
    EMAIL_CAMPAIGNS,
    EVENTS,
    LEAD_LABELS,
    MAILBOX_DAYS,
    MAILBOXES,
    METRICS,
    RECIPIENTS,
    SESSIONS,
    SUPPRESSIONS,
    TRACKING,
    UNMATCHED,
    USERS,
    WARM_UP_EMAILS,
    WARMUP,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_MESSAGES,
)

STRING = {"$type": "string"}


@dataclass(frozen=True)
class IndexSpec:
    """One index: its name, keys, and whether (and where) it is unique."""

    collection: str
    name: str
    keys: tuple[str, ...]
    unique: bool = False
    partial: dict[str, Any] | None = None
    field: str | None = None  # the field a duplicate names in DuplicateError
    kind: str = "document"  # what a duplicate is ("user", "mailbox", …)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


INDEXES: tuple[IndexSpec, ...] = (
    # user_information_table
    IndexSpec(USERS, "uq_user_information_table_login_id", ("login_id",), True,
              field="login_id", kind="user"),
    IndexSpec(USERS, "uq_user_information_table_email", ("email",), True,
              partial={"email": STRING}, field="email", kind="user"),
    IndexSpec(USERS, "uq_user_information_table_clerk_user_id", ("clerk_user_id",), True,
              partial={"clerk_user_id": STRING}, field="clerk_user_id", kind="user"),
    IndexSpec(USERS, "ix_user_information_table_created_at", ("created_at",)),
    # linkbox_box_table
    IndexSpec(MAILBOXES, "uq_linkbox_box_table_user_id_email", ("user_id", "email"), True,
              field="email", kind="mailbox"),
    # At most one primary per user, enforced by the server.
    IndexSpec(MAILBOXES, "uq_linkbox_box_table_primary", ("user_id",), True,
              partial={"is_primary": True}, field="is_primary", kind="primary mailbox"),
    IndexSpec(MAILBOXES, "ix_linkbox_box_table_status", ("status",)),
    IndexSpec(MAILBOXES, "ix_linkbox_box_table_created_at", ("created_at",)),
    IndexSpec(MAILBOXES, "ix_linkbox_box_table_dns_checked_at", ("dns_checked_at",)),
    IndexSpec(MAILBOX_DAYS, "uq_mailbox_days_mailbox_id_day", ("mailbox_id", "day"), True,
              field="day", kind="mailbox day"),
    IndexSpec(WARMUP, "uq_warmup_emails_message_id", ("message_id",), True,
              field="message_id", kind="warm-up email"),
    IndexSpec(WARMUP, "ix_warmup_emails_status_planned_at", ("status", "planned_at")),
    IndexSpec(WARMUP, "ix_warmup_emails_mailbox_id_sent_at", ("mailbox_id", "sent_at")),
    IndexSpec(WARMUP, "ix_warmup_emails_to_mailbox_id_found_at", ("to_mailbox_id", "found_at")),
    # campaign_creation_table
    IndexSpec(CAMPAIGNS, "uq_campaign_creation_table_campaign_id", ("campaign_id",), True,
              field="campaign_id", kind="campaign"),
    IndexSpec(CAMPAIGNS, "ix_campaign_creation_table_user_id_created_at",
              ("user_id", "created_at")),
    IndexSpec(CAMPAIGNS, "ix_campaign_creation_table_mailbox_id", ("mailbox_id",)),
    IndexSpec(CAMPAIGNS, "ix_campaign_creation_table_status_start_time",
              ("status", "start_time")),
    IndexSpec(CAMPAIGNS, "ix_campaign_creation_table_start_time", ("start_time",)),
    # campaign_matrix
    IndexSpec(METRICS, "uq_campaign_matrix_campaign_id", ("campaign_id",), True,
              field="campaign_id", kind="campaign_matrix document"),
    IndexSpec(METRICS, "ix_campaign_matrix_user_id", ("user_id",)),
    IndexSpec(METRICS, "ix_campaign_matrix_mailbox_id", ("mailbox_id",)),
    # email_tracking: one record per (recipient, step) of a campaign; the claim index.
    IndexSpec(TRACKING, "uq_email_tracking_campaign_id_recipient_email_step",
              ("campaign_id", "recipient_email", "step"), True,
              field="recipient_email", kind="recipient"),
    IndexSpec(TRACKING, "ix_email_tracking_status_scheduled_at", ("status", "scheduled_at")),
    IndexSpec(TRACKING, "ix_email_tracking_message_id", ("message_id",)),
    IndexSpec(TRACKING, "ix_email_tracking_user_id", ("user_id",)),
    IndexSpec(TRACKING, "ix_email_tracking_mailbox_id", ("mailbox_id",)),
    # what a mailbox sent today, counted against its daily limit as its emails leave
    IndexSpec(TRACKING, "ix_email_tracking_mailbox_id_sent_at", ("mailbox_id", "sent_at")),
    # a bounce or an auto-reply without a Message-ID of ours: by mailbox and address
    IndexSpec(TRACKING, "ix_email_tracking_mailbox_id_recipient_email",
              ("mailbox_id", "recipient_email")),
    IndexSpec(TRACKING, "ix_email_tracking_user_id_recipient_email",
              ("user_id", "recipient_email")),
    # campaign_recipients: one per person of a campaign
    IndexSpec(RECIPIENTS, "uq_campaign_recipients_campaign_id_recipient_email",
              ("campaign_id", "recipient_email"), True,
              field="recipient_email", kind="recipient"),
    IndexSpec(RECIPIENTS, "ix_campaign_recipients_user_id_lead_status",
              ("user_id", "lead_status")),
    IndexSpec(LEAD_LABELS, "uq_lead_labels_user_id_key", ("user_id", "key"), True,
              field="name", kind="label"),
    # conversations: a reply read again is kept once; threads newest first
    IndexSpec(CONVERSATION_MESSAGES, "uq_conversation_messages_mailbox_id_message_id",
              ("mailbox_id", "message_id"), True, partial={"message_id": STRING},
              field="message_id", kind="conversation message"),
    IndexSpec(CONVERSATION_MESSAGES, "ix_conversation_messages_user_id_received_at",
              ("user_id", "received_at")),
    IndexSpec(CONVERSATION_MESSAGES, "ix_conversation_messages_campaign_id_recipient_email",
              ("campaign_id", "recipient_email", "received_at")),
    IndexSpec(CONVERSATION_FILES, "ix_conversation_files_message_id", ("message_id",)),
    # outgoing webhooks
    IndexSpec(WEBHOOK_ENDPOINTS, "ix_webhook_endpoints_user_id", ("user_id",)),
    IndexSpec(WEBHOOK_MESSAGES, "uq_webhook_messages_endpoint_id_event_id",
              ("endpoint_id", "event_id"), True, field="event_id", kind="webhook message"),
    IndexSpec(WEBHOOK_MESSAGES, "ix_webhook_messages_status_next_attempt_at",
              ("status", "next_attempt_at")),
    IndexSpec(WEBHOOK_MESSAGES, "ix_webhook_messages_endpoint_id_person_seq",
              ("endpoint_id", "person", "seq")),
    IndexSpec(WEBHOOK_MESSAGES, "ix_webhook_messages_endpoint_id_created_at",
              ("endpoint_id", "created_at")),
    IndexSpec(WEBHOOK_ATTEMPTS, "ix_webhook_attempts_message_id", ("message_id",)),
    # email_events
    IndexSpec(EVENTS, "ix_email_events_record_id", ("record_id",)),
    IndexSpec(EVENTS, "ix_email_events_campaign_id_occurred_at", ("campaign_id", "occurred_at")),
    IndexSpec(EVENTS, "uq_email_events_user_id_seq", ("user_id", "seq"), unique=True),
    # Opens and clicks still settling (tracking/classify.py), oldest first.
    IndexSpec(EVENTS, "ix_email_events_settling", ("occurred_at",),
              partial={"machine_reason": "settling"}),
    # suppression_list
    IndexSpec(SUPPRESSIONS, "uq_suppression_list_user_id_email", ("user_id", "email"), True,
              field="email", kind="suppressed address"),
    # inbound_unmatched (listed newest first, per owner)
    IndexSpec(UNMATCHED, "ix_inbound_unmatched_user_id_received_at", ("user_id", "received_at")),
    # api_keys, sessions
    IndexSpec(API_KEYS, "uq_api_keys_key_hash", ("key_hash",), True,
              field="key_hash", kind="API key"),
    IndexSpec(API_KEYS, "ix_api_keys_user_id", ("user_id",)),
    IndexSpec(SESSIONS, "uq_sessions_token_hash", ("token_hash",), True,
              field="token_hash", kind="session"),
    IndexSpec(SESSIONS, "ix_sessions_user_id", ("user_id",)),
    # webhook deliveries already processed, forgotten by the server after WEBHOOK_MEMORY
    IndexSpec(WEBHOOK_DELIVERIES, "ix_webhook_deliveries_received_at", ("received_at",),
              extra={"expireAfterSeconds": int(WEBHOOK_MEMORY.total_seconds())}),
    # the legacy collections (read by owner, oldest first)
    IndexSpec(WARM_UP_EMAILS, "ix_warm_up_emails_table_user_id", ("user_id",)),
    IndexSpec(WARM_UP_EMAILS, "ix_warm_up_emails_table_created_at", ("created_at",)),
    IndexSpec(EMAIL_CAMPAIGNS, "ix_email_campaigns_user_id", ("user_id",)),
    IndexSpec(EMAIL_CAMPAIGNS, "ix_email_campaigns_created_at", ("created_at",)),
)  # fmt: skip


def unique_indexes(collection: str) -> list[IndexSpec]:
    """The unique indexes of a collection, most specific first."""
    return [spec for spec in INDEXES if spec.collection == collection and spec.unique]


async def ensure_indexes(database: Any) -> int:
    """Create every index that is missing; returns how many specs were applied."""
    for spec in INDEXES:
        options: dict[str, Any] = {"name": spec.name, **spec.extra}
        if spec.unique:
            options["unique"] = True
        if spec.partial is not None:
            options["partialFilterExpression"] = spec.partial
        await database[spec.collection].create_index([(key, 1) for key in spec.keys], **options)
    return len(INDEXES)
