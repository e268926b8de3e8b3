"""The SQL tables: one per schema collection, with exactly the schema's field names.

Ids are ObjectIds as 24-hex strings. Index names are stable because the error mapping in
`errors.py` reads them to say which field a duplicate hit.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from mailramp.metrics.models import COUNTERS, RATES
from mailramp.storage.sql.types import UTCDateTime, json_document
from mailramp.tracking.models import EVENT_TIMESTAMPS

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ObjectIdColumn = String(24)

users = Table(
    "user_information_table",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, nullable=False),
    Column("user_name", String(200), nullable=False),
    Column("login_id", String(254), nullable=False),
    Column("password", Text, nullable=True),
    Column("email", String(254), nullable=True),
    Column("clerk_user_id", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    # True on the instance's first user only (accounts/models.py): unique, NULL elsewhere.
    Column("first_user", Boolean, nullable=True),
    Column("last_login", UTCDateTime, nullable=True),
    # Throttling of failed local logins (docs/api.md).
    Column("failed_logins", Integer, nullable=False, server_default=text("0")),
    Column("last_failed_login_at", UTCDateTime, nullable=True),
    Index("uq_user_information_table_login_id", "login_id", unique=True),
    # Unique when present: many users have no email or no Clerk id (NULLs never collide).
    Index("uq_user_information_table_email", "email", unique=True),
    Index("uq_user_information_table_clerk_user_id", "clerk_user_id", unique=True),
    Index("uq_user_information_table_first_user", "first_user", unique=True),
    Index("ix_user_information_table_created_at", "created_at"),
)

mailboxes = Table(
    "linkbox_box_table",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("mailbox_id", ObjectIdColumn, nullable=False),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("email", String(254), nullable=False),
    Column("password", Text, nullable=True),
    Column("access_token", Text, nullable=True),
    Column("refresh_token", Text, nullable=True),
    Column("token_expires_at", UTCDateTime, nullable=True),
    Column("provider", String(20), nullable=False),
    Column("user_profile", json_document(), nullable=False),
    Column("is_primary", Boolean, nullable=False, server_default=text("false")),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("last_used", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("display_name", String(200), nullable=True),
    Column("daily_limit", Integer, nullable=False),
    Column("smtp_host", String(253), nullable=True),
    Column("smtp_port", Integer, nullable=True),
    Column("smtp_security", String(10), nullable=True),
    Column("smtp_username", String(254), nullable=True),
    Column("imap_host", String(253), nullable=True),
    Column("imap_port", Integer, nullable=True),
    Column("imap_security", String(10), nullable=True),
    Column("imap_username", String(254), nullable=True),
    Column("unlinked_at", UTCDateTime, nullable=True),
    # Where the inbox poller is: IMAP's UIDVALIDITY and the last UID read, and when the
    # inbox was last claimed for a check (also how workers avoid checking it twice).
    Column("imap_uid_validity", BigInteger, nullable=True),
    Column("imap_last_uid", BigInteger, nullable=True),
    Column("inbox_checked_at", UTCDateTime, nullable=True),
    # The mailbox's own tracking domain and its last DNS check (mailboxes/tracking_domain.py).
    Column("tracking_domain", String(253), nullable=True),
    Column("tracking_domain_verified_at", UTCDateTime, nullable=True),
    Column("tracking_domain_checked_at", UTCDateTime, nullable=True),
    Column("tracking_domain_problem", Text, nullable=True),
    # Until when the mailbox's last send holds its turn: its next email waits for it
    # (sending/pacing.py, the gap between two sends).
    Column("next_send_at", UTCDateTime, nullable=True),
    # The sending domain's DNS checks (mailboxes/domain_checks.py): the DKIM selectors the
    # user named, the last verdicts, when, and why the last attempt found nothing.
    Column("dkim_selectors", json_document(), nullable=True),
    Column("dns_checks", json_document(), nullable=True),
    Column("dns_checked_at", UTCDateTime, nullable=True),
    Column("dns_check_problem", Text, nullable=True),
    # The ramp (mailboxes/ramp.py) and a brake on its campaign sends (deliverability).
    Column("already_warm", Boolean, nullable=False, server_default=text("true")),
    Column("ramp_start", Integer, nullable=False, server_default=text("10")),
    Column("ramp_step", Integer, nullable=False, server_default=text("2")),
    Column("brake_rules", json_document(), nullable=True),
    Column("brake_kind", String(20), nullable=True),
    Column("brake_reason", Text, nullable=True),
    Column("braked_at", UTCDateTime, nullable=True),
    Column("brake_resumed_at", UTCDateTime, nullable=True),
    Column("brake_resumed_rate", Float, nullable=True),
    # The warm-up pool (deliverability/warmup.py).
    Column("warmup_enabled", Boolean, nullable=False, server_default=text("false")),
    Column("warmup_start", Integer, nullable=False, server_default=text("2")),
    Column("warmup_step", Integer, nullable=False, server_default=text("2")),
    Column("warmup_max", Integer, nullable=False, server_default=text("20")),
    Column("warmup_reply_percent", Integer, nullable=False, server_default=text("30")),
    Column("warmup_timezone", String(64), nullable=False, server_default=text("'UTC'")),
    Index("uq_linkbox_box_table_user_id_email", "user_id", "email", unique=True),
    # At most one primary per user, enforced by the database so concurrent links cannot
    # both become primary.
    Index(
        "uq_linkbox_box_table_primary",
        "user_id",
        unique=True,
        sqlite_where=text("is_primary"),
        postgresql_where=text("is_primary"),
    ),
    Index("ix_linkbox_box_table_status", "status"),
    Index("ix_linkbox_box_table_created_at", "created_at"),
    Index("ix_linkbox_box_table_dns_checked_at", "dns_checked_at"),
)

campaigns = Table(
    "campaign_creation_table",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("campaign_id", String(36), nullable=False),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("mailbox_id", ObjectIdColumn, ForeignKey(mailboxes.c._id), nullable=False),
    Column("campaign_name", String(200), nullable=False),
    Column("subject", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("duration", Float, nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("total_recipients", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("created_by", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("message_format", String(10), nullable=False, server_default=text("'text'")),
    Column("sending_window", json_document(), nullable=True),
    Column("track_opens", Boolean, nullable=False, server_default=text("true")),
    Column("track_clicks", Boolean, nullable=False, server_default=text("true")),
    Column("trap_link", Boolean, nullable=False, server_default=text("false")),
    Column("stop_company_on_reply", Boolean, nullable=False, server_default=text("false")),
    # Variants B, C… of the email (JSON list of {subject, message}); NULL: only A.
    Column("variants", json_document(), nullable=True),
    # A campaign migrated from `email_campaigns` keeps the fields mailramp has no place for.
    Column("legacy_fields", json_document(), nullable=True),
    # Every mailbox it sends from, mailbox_id first (NULL before 0011: just mailbox_id).
    Column("mailbox_ids", json_document(), nullable=True),
    # The follow-up steps (JSON list of FollowUp); NULL before 0014: one step.
    Column("campaign_steps", json_document(), nullable=True),
    Column("auto_reply_postpone_days", Integer, nullable=False, server_default=text("0")),
    # A brake that paused it (deliverability/brakes.py): why and when; and the rate when
    # its owner last resumed it (the same brake waits 7 days unless the rate rises).
    Column("brake_rules", json_document(), nullable=True),
    Column("brake_kind", String(20), nullable=True),
    Column("brake_reason", Text, nullable=True),
    Column("braked_at", UTCDateTime, nullable=True),
    Column("brake_resumed_at", UTCDateTime, nullable=True),
    Column("brake_resumed_rate", Float, nullable=True),
    Index("uq_campaign_creation_table_campaign_id", "campaign_id", unique=True),
    # Listing a user's campaigns newest first, optionally by status.
    Index("ix_campaign_creation_table_user_id_created_at", "user_id", "created_at"),
    Index("ix_campaign_creation_table_mailbox_id", "mailbox_id"),
    Index("ix_campaign_creation_table_status_start_time", "status", "start_time"),
    Index("ix_campaign_creation_table_start_time", "start_time"),
)


def _of_a_campaign() -> list[Column[str]]:
    """The keys of a row that belongs to one campaign (deleted with it), its owner and the
    mailbox it sends from."""
    return [
        Column(
            "campaign_id",
            String(36),
            ForeignKey(campaigns.c.campaign_id, ondelete="CASCADE"),
            nullable=False,
        ),
        Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
        Column("mailbox_id", ObjectIdColumn, ForeignKey(mailboxes.c._id), nullable=False),
    ]


metrics = Table(
    "campaign_matrix",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    *_of_a_campaign(),
    *(Column(name, Integer, nullable=False, server_default=text("0")) for name in COUNTERS),
    *(Column(name, Float, nullable=False, server_default=text("0")) for name in RATES),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_updated", UTCDateTime, nullable=False),
    Index("uq_campaign_matrix_campaign_id", "campaign_id", unique=True),
    Index("ix_campaign_matrix_user_id", "user_id"),
    Index("ix_campaign_matrix_mailbox_id", "mailbox_id"),
)

tracking = Table(
    "email_tracking",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    *_of_a_campaign(),
    Column("recipient_email", String(254), nullable=False),
    Column("merge_variables", json_document(), nullable=False),
    Column("variant", Integer, nullable=False, server_default=text("0")),
    Column("step", Integer, nullable=False, server_default=text("1")),
    Column("timezone", String(64), nullable=True),
    Column("status", String(20), nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("message_id", String(250), nullable=True),
    Column("last_error", Text, nullable=True),
    *(Column(name, UTCDateTime, nullable=True) for name in EVENT_TIMESTAMPS),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # One email per (recipient, step) of a campaign: what makes a send at most once.
    Index(
        "uq_email_tracking_campaign_id_recipient_email_step",
        "campaign_id",
        "recipient_email",
        "step",
        unique=True,
    ),
    # The send queue: workers look for due records by (status, scheduled_at).
    Index("ix_email_tracking_status_scheduled_at", "status", "scheduled_at"),
    # Replies and bounces are matched back to their record by Message-ID.
    Index("ix_email_tracking_message_id", "message_id"),
    Index("ix_email_tracking_user_id", "user_id"),
    Index("ix_email_tracking_mailbox_id", "mailbox_id"),
    # What a mailbox sent today, counted against its daily limit as its emails leave.
    Index("ix_email_tracking_mailbox_id_sent_at", "mailbox_id", "sent_at"),
    # A bounce or an auto-reply without a Message-ID of ours is matched by mailbox and
    # address; soft bounces are counted per owner and address.
    Index("ix_email_tracking_mailbox_id_recipient_email", "mailbox_id", "recipient_email"),
    Index("ix_email_tracking_user_id_recipient_email", "user_id", "recipient_email"),
)


recipients = Table(
    "campaign_recipients",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column(
        "campaign_id",
        String(36),
        ForeignKey(campaigns.c.campaign_id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("recipient_email", String(254), nullable=False),
    *(Column(name, UTCDateTime, nullable=True) for name in EVENT_TIMESTAMPS),
    Column("stopped_at", UTCDateTime, nullable=True),
    Column("lead_status", String(60), nullable=True),
    Column("lead_status_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(
        "uq_campaign_recipients_campaign_id_recipient_email",
        "campaign_id",
        "recipient_email",
        unique=True,
    ),
    # Counts per lead status, and whether a label is still held.
    Index("ix_campaign_recipients_user_id_lead_status", "user_id", "lead_status"),
)

lead_labels = Table(
    "lead_labels",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("name", String(60), nullable=False),
    Column("key", String(60), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("uq_lead_labels_user_id_key", "user_id", "key", unique=True),
)


def _legacy_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("_id", ObjectIdColumn, primary_key=True),
        Column("user_id", ObjectIdColumn, nullable=True),
        Column("created_at", UTCDateTime, nullable=True),
        Column("document", json_document(), nullable=False),
        Index(f"ix_{name}_user_id", "user_id"),
        Index(f"ix_{name}_created_at", "created_at"),
    )


warm_up_emails = _legacy_table("warm_up_emails_table")
email_campaigns = _legacy_table("email_campaigns")

suppressions = Table(
    "suppression_list",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("email", String(254), nullable=False),
    Column("reason", String(20), nullable=False),
    Column("campaign_id", String(36), nullable=True),
    Column("detail", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("uq_suppression_list_user_id_email", "user_id", "email", unique=True),
)

events = Table(
    "email_events",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    # The user's events numbered in commit order (event_sequences hands the numbers out).
    Column("seq", BigInteger, nullable=False),
    # No foreign key: the log is append-only and outlives an email taken out of the queue
    # (a refused import, a removed step), whose last event says `cancelled`.
    Column("record_id", ObjectIdColumn, nullable=False),
    Column("campaign_id", String(36), nullable=False),
    Column("user_id", ObjectIdColumn, nullable=False),
    Column("recipient_email", String(254), nullable=True),
    Column("type", String(20), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("machine", Boolean, nullable=False, server_default=text("false")),
    Column("machine_reason", String(50), nullable=True),
    Column("details", json_document(), nullable=False),
    Index("ix_email_events_record_id", "record_id"),
    # The time series: a campaign's events by hour.
    Index("ix_email_events_campaign_id_occurred_at", "campaign_id", "occurred_at"),
    # The log, read by cursor: a user's events after a number.
    Index("uq_email_events_user_id_seq", "user_id", "seq", unique=True),
    # Opens and clicks still settling (tracking/classify.py), oldest first.
    Index(
        "ix_email_events_settling",
        "occurred_at",
        sqlite_where=text("machine_reason = 'settling'"),
        postgresql_where=text("machine_reason = 'settling'"),
    ),
)

# The last event number each user was given: the row an event's unit of work updates last,
# so a user's events commit in the order of their numbers.
event_sequences = Table(
    "event_sequences",
    metadata,
    Column("user_id", ObjectIdColumn, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

# Bounces and complaints that match no email the user sent (kept, never dropped, so the
# user can see them: a bounce of a message sent outside mailramp, a forwarded address).
unmatched = Table(
    "inbound_unmatched",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("mailbox_id", ObjectIdColumn, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("recipient", String(254), nullable=True),
    Column("status", String(20), nullable=True),
    Column("reason", String(30), nullable=True),
    Column("sender", String(300), nullable=True),
    Column("subject", String(300), nullable=True),
    Column("message_id", String(250), nullable=True),
    Column("details", json_document(), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_inbound_unmatched_user_id_received_at", "user_id", "received_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("uq_api_keys_key_hash", "key_hash", unique=True),
    Index("ix_api_keys_user_id", "user_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("user_agent", String(300), nullable=True),
    Index("uq_sessions_token_hash", "token_hash", unique=True),
    Index("ix_sessions_user_id", "user_id"),
)

# The installation's own secrets (the tracking links' signing keys), encrypted like the
# mailboxes' (kit/secrets.py).
instance_secrets = Table(
    "instance_secrets",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The last heartbeat of each sending worker (sending/heartbeats.py): `mailramp worker list`.
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("worker_id", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(100), nullable=False),
    Column("lease_seconds", Float, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("beat_at", UTCDateTime, nullable=False),
    Column("last_pass_at", UTCDateTime),
    Column("held", Integer, nullable=False),
    Column("stopped_at", UTCDateTime),
)

# What admins and the operator did to accounts (auth/admin.py), newest read first.
audit_log = Table(
    "audit_log",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_id", ObjectIdColumn, nullable=True),
    Column("actor", String(300), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target_id", ObjectIdColumn, nullable=True),
    Column("target", String(254), nullable=False),
    Column("detail", Text, nullable=True),
    Index("ix_audit_log_at", "at"),
)

# One row per mailbox per UTC day (deliverability/history.py): what it sent and what became
# of it, where its warm-up emails landed, whether a brake held it, the limit that applied.
mailbox_days = Table(
    "mailbox_days",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("mailbox_id", ObjectIdColumn, ForeignKey(mailboxes.c._id), nullable=False),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("day", String(10), nullable=False),
    Column("campaign_sent", Integer, nullable=False),
    Column("bounced", Integer, nullable=False),
    Column("complained", Integer, nullable=False),
    Column("replied", Integer, nullable=False),
    Column("warmup_sent", Integer, nullable=False),
    Column("warmup_inbox", Integer, nullable=False),
    Column("warmup_spam", Integer, nullable=False),
    Column("warmup_other", Integer, nullable=False),
    Column("braked", Boolean, nullable=False),
    Column("daily_limit", Integer, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("uq_mailbox_days_mailbox_id_day", "mailbox_id", "day", unique=True),
)


# What the warm-up pool's mailboxes sent each other (deliverability/models.py WarmupEmail).
warmup_emails = Table(
    "warmup_emails",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, nullable=False),
    Column("mailbox_id", ObjectIdColumn, ForeignKey(mailboxes.c._id), nullable=False),
    Column("to_mailbox_id", ObjectIdColumn, ForeignKey(mailboxes.c._id), nullable=False),
    Column("to_user_id", ObjectIdColumn, nullable=False),
    Column("thread_id", ObjectIdColumn, nullable=False),
    Column("step", Integer, nullable=False),
    Column("message_id", String(250), nullable=False),
    Column("in_reply_to", String(250), nullable=True),
    Column("references", Text, nullable=True),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("planned_at", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("found_at", UTCDateTime, nullable=True),
    Column("placement", String(10), nullable=True),
    Column("rescued_at", UTCDateTime, nullable=True),
    Column("read_at", UTCDateTime, nullable=True),
    Column("reply_planned", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("uq_warmup_emails_message_id", "message_id", unique=True),
    Index("ix_warmup_emails_status_planned_at", "status", "planned_at"),
    Index("ix_warmup_emails_mailbox_id_sent_at", "mailbox_id", "sent_at"),
    Index("ix_warmup_emails_to_mailbox_id_found_at", "to_mailbox_id", "found_at"),
)


# Webhook deliveries already processed (their Svix message ids), so a replayed delivery
# changes nothing; kept for WEBHOOK_MEMORY (auth/repository.py), far past Svix's 5-minute
# signature window.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", String(200), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_webhook_deliveries_received_at", "received_at"),
)


webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("url", Text, nullable=False),
    Column("kinds", json_document(), nullable=False),
    Column("description", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text, nullable=True),
    Column("previous_secret_until", UTCDateTime, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text, nullable=True),
    Column("disabled_at", UTCDateTime, nullable=True),
    Column("cursor", BigInteger, nullable=False),
    Column("failing_since", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_webhook_endpoints_user_id", "user_id"),
)

webhook_messages = Table(
    "webhook_messages",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column(
        "endpoint_id",
        ObjectIdColumn,
        ForeignKey(webhook_endpoints.c._id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", ObjectIdColumn, nullable=False),
    Column("seq", BigInteger, nullable=True),
    Column("event_id", ObjectIdColumn, nullable=False),
    Column("person", String(400), nullable=False),
    Column("type", String(40), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # An event is queued once per endpoint.
    Index("uq_webhook_messages_endpoint_id_event_id", "endpoint_id", "event_id", unique=True),
    # What is due; a person's earlier message still pending.
    Index("ix_webhook_messages_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_webhook_messages_endpoint_id_person_seq", "endpoint_id", "person", "seq"),
    Index("ix_webhook_messages_endpoint_id_created_at", "endpoint_id", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column(
        "message_id",
        ObjectIdColumn,
        ForeignKey(webhook_messages.c._id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("endpoint_id", ObjectIdColumn, nullable=False),
    Column("user_id", ObjectIdColumn, nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("manual", Boolean, nullable=False),
    Index("ix_webhook_attempts_message_id", "message_id"),
)


conversation_messages = Table(
    "conversation_messages",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column("user_id", ObjectIdColumn, ForeignKey(users.c._id), nullable=False),
    Column("mailbox_id", ObjectIdColumn, nullable=False),
    Column(
        "campaign_id",
        String(36),
        ForeignKey(campaigns.c.campaign_id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("record_id", ObjectIdColumn, nullable=False),
    Column("recipient_email", String(254), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("message_id", String(998), nullable=True),
    Column("references", json_document(), nullable=False),
    Column("sender", Text, nullable=False),
    Column("to", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("text", Text, nullable=False),
    Column("quoted", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("attachments", json_document(), nullable=False),
    Column("size", Integer, nullable=False),
    Column("problem", Text, nullable=True),
    Column("read_at", UTCDateTime, nullable=True),
    Column("status", String(20), nullable=True),
    Column("error", Text, nullable=True),
    Column("track_opens", Boolean, nullable=False),
    Column("opened_at", UTCDateTime, nullable=True),
    Column("human_opened_at", UTCDateTime, nullable=True),
    # A message read again (a crash before the inbox position was saved) is kept once.
    Index(
        "uq_conversation_messages_mailbox_id_message_id", "mailbox_id", "message_id", unique=True
    ),
    # Threads: a user's, newest first; one person's messages in order.
    Index("ix_conversation_messages_user_id_received_at", "user_id", "received_at"),
    Index(
        "ix_conversation_messages_campaign_id_recipient_email",
        "campaign_id",
        "recipient_email",
        "received_at",
    ),
)

conversation_files = Table(
    "conversation_files",
    metadata,
    Column("_id", ObjectIdColumn, primary_key=True),
    Column(
        "message_id",
        ObjectIdColumn,
        ForeignKey(conversation_messages.c._id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", ObjectIdColumn, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_conversation_files_message_id", "message_id"),
)
