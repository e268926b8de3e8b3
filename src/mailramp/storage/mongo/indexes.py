"""The indexes of every collection, as the schema lists them and the queries need them,
brought in at start-up and by `mailramp db upgrade` after comparing with what the database
holds: a database the previous application used already has indexes of its own
(`login_id_1`, `email_1`, …); those doing what ours do are adopted, those in the way are
reported with their way out, and nothing is ever dropped (`ensure_indexes`).

Optional unique fields (a user's email, Clerk id) get partial unique indexes over
documents where the field is a string, so the many documents without one never collide.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.errors import OperationFailure

from mailramp.auth.models import WEBHOOK_MEMORY
from mailramp.storage.mongo.codec import (
    API_KEYS,
    AUDIT,
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

log = logging.getLogger(__name__)


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
    # Exactly one first user: the insert that claims it wins (accounts/service.py).
    IndexSpec(USERS, "uq_user_information_table_first_user", ("first_user",), True,
              partial={"first_user": True}, field="first_user", kind="user"),
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
    # The claim: pending records of the active campaigns (an $in list), earliest first.
    # With the campaign between status and time, the server reads only those campaigns'
    # due records (one range each, merged in time order); a paused campaign's backlog is
    # never examined, as it would be walking (status, scheduled_at).
    IndexSpec(TRACKING, "ix_email_tracking_status_campaign_id_scheduled_at",
              ("status", "campaign_id", "scheduled_at")),
    # Outcomes whose consequences are still owed (queue.py): few, found by the
    # reconciliation; sparse, so the many records owing nothing are not in it.
    IndexSpec(TRACKING, "ix_email_tracking_outcome_owed_at", ("outcome_owed.at",),
              extra={"sparse": True}),
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
    # the audit log, read newest first
    IndexSpec(AUDIT, "ix_audit_log_at", ("at",)),
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


# What changes what an index does; the rest of index_information() (v, ns, background…)
# is bookkeeping.
BEHAVIOUR = ("unique", "sparse", "partialFilterExpression", "expireAfterSeconds", "collation")
# The server refuses an index that clashes with one it holds: the same keys and options
# under another name, or the same name with other options (85), the same name with other
# keys (86). Which options may differ beside the same keys depends on the server: a
# collation always, a partial filter or uniqueness from MongoDB 5.0, a TTL never.
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
CLASHES = frozenset({INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT})
UPGRADE = "mailramp db upgrade"


@dataclass(frozen=True)
class Index:
    """An index as the database describes it: its keys and the options that change what
    it does."""

    collection: str
    name: str
    keys: tuple[tuple[str, Any], ...]
    options: dict[str, Any]

    @classmethod
    def of(cls, spec: IndexSpec) -> Index:
        """The index a spec asks for."""
        options: dict[str, Any] = dict(spec.extra)
        if spec.unique:
            options["unique"] = True
        if spec.partial is not None:
            options["partialFilterExpression"] = spec.partial
        return cls(spec.collection, spec.name, tuple((key, 1) for key in spec.keys), options)

    @classmethod
    def read(cls, collection: str, name: str, information: Mapping[str, Any]) -> Index:
        """One entry of index_information() (PyMongo's and the test double's shape)."""
        keys = tuple((str(field), _plain(direction)) for field, direction in information["key"])
        options = {key: _plain(information[key]) for key in BEHAVIOUR if key in information}
        for flag in ("unique", "sparse"):  # `unique: false` is the default said out loud
            if not options.get(flag):
                options.pop(flag, None)
        return cls(collection, name, keys, options)

    def same_as(self, other: Index) -> bool:
        """Whether both do the same thing, whatever their names."""
        return self.keys == other.keys and self.options == other.options

    def __str__(self) -> str:
        text = f"{self.name} {_js(dict(self.keys))}"
        return f"{text} {_js(self.options)}" if self.options else text


@dataclass(frozen=True)
class Adoption:
    """An existing index that already is one of ours under another name."""

    spec: IndexSpec
    index: Index

    def line(self) -> str:
        return (
            f"adopted: {self.index.collection}.{self.index.name} serves as "
            f"{self.spec.name} (same keys and options)"
        )


@dataclass(frozen=True)
class IndexConflict:
    """An existing index in the way of one of ours, in words an operator can act on."""

    spec: IndexSpec
    existing: Index | None  # None: the server refused ours, naming no index we could find
    beside: bool  # whether ours stands beside it (it is missing otherwise)
    meanwhile: str  # what goes wrong until it is solved
    refusal: str | None = None  # the server's words when it refused ours

    @property
    def collection(self) -> str:
        return self.spec.collection

    @property
    def way_out(self) -> tuple[str, ...]:
        """The commands that solve it: mongosh's first, then mailramp's."""
        if self.existing is None:
            return (f"db.{self.collection}.getIndexes()", UPGRADE)
        return (f'db.{self.collection}.dropIndex("{self.existing.name}")', UPGRADE)

    def _parts(self) -> tuple[str, str]:
        ours = Index.of(self.spec)
        if self.beside:
            outcome = "in place beside it"
        elif self.existing is not None and self.existing.name == self.spec.name:
            outcome = "not created: the name is taken"
        else:
            outcome = f"not created, the server said: {self.refusal}"
        kept = "" if self.existing is None else f"{self.existing} is kept; "
        head = f"conflict in {self.collection}: {kept}mailramp needs {ours} ({outcome})"
        command, then = self.way_out
        if self.existing is None:
            return (
                head,
                f"in mongosh `{command}` shows the index the server means: drop it, then `{then}`",
            )
        return head, f"in mongosh `{command}`, then `{then}`"

    def lines(self) -> list[str]:
        """The conflict as `mailramp db upgrade` prints it."""
        head, way_out = self._parts()
        return [head, f"  meanwhile: {self.meanwhile}", f"  way out: {way_out}"]

    def line(self) -> str:
        """The conflict on one line (the log's warning)."""
        head, way_out = self._parts()
        return f"{head}; meanwhile: {self.meanwhile}; way out: {way_out}"


@dataclass
class IndexReport:
    """What ensure_indexes found and did, for the operator."""

    in_place: list[IndexSpec] = dataclasses.field(default_factory=list)
    created: list[IndexSpec] = dataclasses.field(default_factory=list)
    adopted: list[Adoption] = dataclasses.field(default_factory=list)
    conflicts: list[IndexConflict] = dataclasses.field(default_factory=list)
    foreign: list[Index] = dataclasses.field(default_factory=list)  # kept, not mailramp's

    def lines(self) -> list[str]:
        """A summary line, then each adoption, conflict and foreign index."""
        counts = [
            f"{len(self.in_place)} in place",
            f"{len(self.created)} created",
            f"{len(self.adopted)} adopted",
            f"{len(self.foreign)} kept (not mailramp's)",
        ]
        summary = [count for count in counts if not count.startswith("0 ")]
        conflicts = len(self.conflicts)
        summary.append({0: "no conflict", 1: "1 conflict"}.get(conflicts, f"{conflicts} conflicts"))
        lines = [f"indexes: {', '.join(summary)}"]
        lines += [adoption.line() for adoption in self.adopted]
        lines += [line for conflict in self.conflicts for line in conflict.lines()]
        lines += [f"kept, not mailramp's: {index.collection}.{index}" for index in self.foreign]
        return lines


async def ensure_indexes(database: Any) -> IndexReport:
    """Bring every index of INDEXES in without dropping anything, comparing with what the
    database holds: ours under its name → nothing; the same keys and options under another
    name (the previous application's `login_id_1`) → adopted; missing → created; an index
    whose name or keys clash with ours under other options → a conflict, logged as one
    warning line and reported with its way out (ours is created beside it when the server
    allows both). Indexes of these collections that match none are left alone. Never
    raises for a conflict, only for what is not one (an outage, a unique index refused
    by duplicates already stored)."""
    report = IndexReport()
    held: dict[str, dict[str, Index]] = {}
    claimed: set[tuple[str, str]] = set()
    for spec in INDEXES:
        if spec.collection not in held:
            held[spec.collection] = await _read(database, spec.collection)
        await _ensure(database, spec, held[spec.collection], claimed, report)
    kept = claimed | {(spec.collection, spec.name) for spec in INDEXES}
    report.foreign = [
        index
        for indexes in held.values()
        for index in indexes.values()
        if index.name != "_id_" and (index.collection, index.name) not in kept
    ]
    for conflict in report.conflicts:
        log.warning("%s", conflict.line())
    return report


async def _read(database: Any, collection: str) -> dict[str, Index]:
    information = await database[collection].index_information()
    return {name: Index.read(collection, name, value) for name, value in information.items()}


async def _ensure(
    database: Any,
    spec: IndexSpec,
    held: dict[str, Index],
    claimed: set[tuple[str, str]],
    report: IndexReport,
) -> None:
    """Compare one spec with the indexes its collection holds (`held`, kept up to date)
    and do what ensure_indexes says."""
    wanted = Index.of(spec)
    ours = {other.name for other in INDEXES if other.collection == spec.collection}
    twins = [
        index
        for index in held.values()
        if index.keys == wanted.keys
        and index.name not in ours
        and (spec.collection, index.name) not in claimed
    ]
    present = held.get(spec.name)
    if present is not None:
        claimed.add((spec.collection, spec.name))
        if not present.same_as(wanted):
            report.conflicts.append(_conflict(spec, present, beside=False))
            return
        report.in_place.append(spec)
    elif adopted := next((twin for twin in twins if twin.same_as(wanted)), None):
        claimed.add((spec.collection, adopted.name))
        report.adopted.append(Adoption(spec, adopted))
        return
    elif refusal := await _create(database, spec):
        await _refused(database, spec, refusal, held, claimed, report)
        return
    else:
        report.created.append(spec)
        held[spec.name] = wanted
    # Ours stands: a twin beside it that does nothing of its own (a plain lookup index) is
    # merely redundant and listed as kept; one that refuses or deletes documents ours
    # would not (the old non-partial unique `email_1`) is a conflict.
    for twin in twins:
        if _harms(spec, twin):
            claimed.add((spec.collection, twin.name))
            report.conflicts.append(_conflict(spec, twin, beside=True))


async def _refused(
    database: Any,
    spec: IndexSpec,
    refusal: str,
    held: dict[str, Index],
    claimed: set[tuple[str, str]],
    report: IndexReport,
) -> None:
    """Report ours refused by the server, against the index it means: the one its message
    names, or else those with our keys (read again: the server knows better)."""
    held.update(await _read(database, spec.collection))
    ours = {other.name for other in INDEXES if other.collection == spec.collection}
    candidates = [index for index in held.values() if index.name not in ours]
    named = [
        index
        for index in candidates
        if re.search(rf"(?<![\w.$-]){re.escape(index.name)}(?![\w.$-])", refusal)
    ]
    blockers = named or [index for index in candidates if index.keys == Index.of(spec).keys]
    for blocker in blockers:
        claimed.add((spec.collection, blocker.name))
        report.conflicts.append(_conflict(spec, blocker, beside=False, refusal=refusal))
    if not blockers:
        report.conflicts.append(_conflict(spec, None, beside=False, refusal=refusal))


async def _create(database: Any, spec: IndexSpec) -> str | None:
    """Create one index; the server's words when it refuses it as clashing with another."""
    index = Index.of(spec)
    try:
        await database[spec.collection].create_index(
            list(index.keys), name=spec.name, **index.options
        )
    except OperationFailure as error:
        if error.code not in CLASHES:
            raise
        message = (error.details or {}).get("errmsg") or str(error)
        return str(message).strip().split("\n", 1)[0]
    return None


def _conflict(
    spec: IndexSpec, existing: Index | None, *, beside: bool, refusal: str | None = None
) -> IndexConflict:
    harms = [] if existing is None else _harms(spec, existing)
    # Ours missing matters, unless it is a unique one the existing index already stands for.
    covered = spec.unique and existing is not None and _covers(existing, Index.of(spec))
    if not beside and not covered:
        harms.append(_missing(spec))
    return IndexConflict(spec, existing, beside, "; ".join(harms), refusal)


def _harms(spec: IndexSpec, existing: Index) -> list[str]:
    """What `existing` does that ours would not (nothing for a plain lookup index)."""
    wanted = Index.of(spec)
    harms = []
    ttl = existing.options.get("expireAfterSeconds")
    if ttl is not None and ttl != wanted.options.get("expireAfterSeconds"):
        harms.append(
            f"the server deletes {spec.collection} documents {ttl} seconds after their "
            f"{existing.keys[0][0]}"
        )
    if not _covers(wanted, existing):
        harms.append(_refuses(spec, existing))
    return harms


def _covers(index: Index, other: Index) -> bool:
    """Whether `index` refuses every write the other refuses (or the other refuses none):
    unique over every document, on no more fields than the other."""
    if not other.options.get("unique"):
        return True
    return (
        bool(index.options.get("unique"))
        and "partialFilterExpression" not in index.options
        and "sparse" not in index.options
        and {key for key, _ in index.keys} <= {key for key, _ in other.keys}
    )


def _refuses(spec: IndexSpec, existing: Index) -> str:
    """The writes a unique `existing` refuses that mailramp accepts."""
    fields = _fields(existing.keys)
    same_keys = existing.keys == Index.of(spec).keys
    if (
        spec.unique
        and same_keys
        and spec.partial
        and "partialFilterExpression" not in existing.options
    ):
        field, condition = next(iter(spec.partial.items()))
        if condition == STRING and len(spec.partial) == 1:
            return f"a second {spec.kind} without {_a(field)} is refused"
        return (
            f"a second {spec.collection} document with the same {fields} is refused even "
            f"where {_js(spec.partial)} does not hold"
        )
    if not spec.unique or not same_keys:
        return f"a second {spec.collection} document with the same {fields} is refused"
    return f"{existing.name} refuses a second {spec.kind} with the same {fields} by its own rule"


def _missing(spec: IndexSpec) -> str:
    """What goes wrong while our index is missing."""
    if spec.unique:
        return (
            f"nothing refuses a second {spec.kind} with the same "
            f"{_fields(Index.of(spec).keys)} (mailramp's {spec.name} is missing)"
        )
    ttl = spec.extra.get("expireAfterSeconds")
    if ttl is not None:
        return (
            f"{spec.collection} documents are not deleted {ttl} seconds after their "
            f"{spec.keys[0]} (mailramp's {spec.name} is missing)"
        )
    return f"the queries {spec.name} serves read the whole collection (slower, same answers)"


def _fields(keys: tuple[tuple[str, Any], ...]) -> str:
    names = [key for key, _ in keys]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _plain(value: Any) -> Any:
    """1.0 → 1 (a server may answer directions and TTLs as doubles); the rest unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _js(value: Any) -> str:
    """A value as mongosh writes it: `{email: {$type: "string"}}`."""
    if isinstance(value, Mapping):
        items = (f"{_js_key(str(key))}: {_js(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_js(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value)
    return str(_plain(value))


def _js_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_$][\w$]*", key) else json.dumps(key)
