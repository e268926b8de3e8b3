"""Models to documents and back, in the schema's native form: `_id` an ObjectId, the
foreign keys the schema types as ObjectId stored as ObjectId, the `user_id`/`mailbox_id`
aliases on their own documents kept as strings, `campaign_id` a UUID string, datetimes as
BSON dates in UTC."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from bson import ObjectId
from pydantic import BaseModel

from mailramp.storage.rows import changes_row, to_row

ModelT = TypeVar("ModelT", bound=BaseModel)

USERS = "user_information_table"
MAILBOXES = "linkbox_box_table"
CAMPAIGNS = "campaign_creation_table"
METRICS = "campaign_matrix"
TRACKING = "email_tracking"
RECIPIENTS = "campaign_recipients"
EVENTS = "email_events"
EVENT_SEQUENCES = "event_sequences"
SUPPRESSIONS = "suppression_list"
API_KEYS = "api_keys"
SESSIONS = "sessions"
WARM_UP_EMAILS = "warm_up_emails_table"
EMAIL_CAMPAIGNS = "email_campaigns"
WEBHOOK_DELIVERIES = "webhook_deliveries"
UNMATCHED = "inbound_unmatched"
META = "mailramp_meta"
HEARTBEATS = "worker_heartbeats"
AUDIT = "audit_log"

OWED = "outcome_owed"
"""On an email_tracking record whose send outcome is written but whose consequences (the
person's firsts, the next step, the end of the sequence, events, counters) may not all be
yet: the result and its moment, to complete them (queue.py)."""
MAILBOX_DAYS = "mailbox_days"
WARMUP = "warmup_emails"
LEAD_LABELS = "lead_labels"
WEBHOOK_ENDPOINTS = "webhook_endpoints"
WEBHOOK_MESSAGES = "webhook_messages"
WEBHOOK_ATTEMPTS = "webhook_attempts"
CONVERSATION_MESSAGES = "conversation_messages"
CONVERSATION_FILES = "conversation_files"

OBJECT_ID_FIELDS: dict[str, frozenset[str]] = {
    # `user_id` here is the string alias of `_id` (schema): not converted.
    USERS: frozenset({"_id"}),
    # `mailbox_id` here is the string alias of `_id`; `user_id` the owner, an ObjectId.
    MAILBOXES: frozenset({"_id", "user_id"}),
    CAMPAIGNS: frozenset({"_id", "user_id", "mailbox_id", "created_by"}),
    METRICS: frozenset({"_id", "user_id", "mailbox_id"}),
    TRACKING: frozenset({"_id", "user_id", "mailbox_id"}),
    RECIPIENTS: frozenset({"_id", "user_id"}),
    EVENTS: frozenset({"_id", "user_id", "record_id"}),
    SUPPRESSIONS: frozenset({"_id", "user_id"}),
    API_KEYS: frozenset({"_id", "user_id"}),
    SESSIONS: frozenset({"_id", "user_id"}),
    AUDIT: frozenset({"_id", "actor_id", "target_id"}),
    WARM_UP_EMAILS: frozenset({"_id", "user_id"}),
    EMAIL_CAMPAIGNS: frozenset({"_id", "user_id"}),
    UNMATCHED: frozenset({"_id", "user_id", "mailbox_id"}),
    MAILBOX_DAYS: frozenset({"_id", "user_id", "mailbox_id"}),
    LEAD_LABELS: frozenset({"_id", "user_id"}),
    WEBHOOK_ENDPOINTS: frozenset({"_id", "user_id"}),
    WEBHOOK_MESSAGES: frozenset({"_id", "user_id", "endpoint_id", "event_id"}),
    WEBHOOK_ATTEMPTS: frozenset({"_id", "user_id", "endpoint_id", "message_id"}),
    CONVERSATION_MESSAGES: frozenset({"_id", "user_id", "mailbox_id", "record_id"}),
    CONVERSATION_FILES: frozenset({"_id", "user_id", "message_id"}),
    WARMUP: frozenset({"_id", "user_id", "mailbox_id", "to_mailbox_id", "to_user_id", "thread_id"}),
}


OBJECT_ID_LISTS: dict[str, frozenset[str]] = {CAMPAIGNS: frozenset({"mailbox_ids"})}
"""Fields holding a list of ids the schema would type as ObjectId (an addition's)."""


def maybe_oid(value: str) -> ObjectId | None:
    """The ObjectId a 24-hex id stands for; None for anything else (which matches nothing,
    as an unknown id does on SQL)."""
    return ObjectId(value) if isinstance(value, str) and ObjectId.is_valid(value) else None


def oid(value: str) -> ObjectId:
    """A 24-hex id as the ObjectId it is stored as."""
    return ObjectId(value)


def to_document(collection: str, model: BaseModel) -> dict[str, Any]:
    """The document for `model` in `collection` (secret fields included, encrypted by the
    services before they reach the store)."""
    return encode(collection, to_row(model))


def encode(collection: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored names and values → document values: ids the schema types as ObjectId become
    ObjectIds."""
    object_ids = OBJECT_ID_FIELDS[collection]
    document = changes_row(values)
    for name in object_ids & document.keys():
        value = document[name]
        if isinstance(value, str):
            document[name] = ObjectId(value)
    for name in OBJECT_ID_LISTS.get(collection, frozenset()) & document.keys():
        document[name] = [ObjectId(item) for item in document[name] or []]
    return document


def decode(value: Any) -> Any:
    """A document value as the models take it: ObjectIds as strings, dates aware UTC."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dict):
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


def from_document(model: type[ModelT], document: Mapping[str, Any] | None) -> ModelT | None:
    """The model of a stored document (fields the model does not know are left out)."""
    if document is None:
        return None
    known = {field.alias or name for name, field in model.model_fields.items()}
    return model.model_validate({k: decode(v) for k, v in document.items() if k in known})
