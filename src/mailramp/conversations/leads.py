"""Setting a person's lead status, and the user's own labels.

A change is one `lead_status` event (details: `from`, `to`, `source`) recorded with the
change itself in one unit of work; "not interested" and "do not contact" also end the
person's sequence, and "do not contact" suppresses their address (models.py says which)."""

from __future__ import annotations

from typing import Literal, Protocol

from mailramp.campaigns.repository import CampaignRepository
from mailramp.campaigns.service import owned_campaign
from mailramp.conversations.models import (
    ENDS_SEQUENCE,
    LABEL_MAX,
    SUPPRESSES,
    LeadLabel,
    LeadStatus,
    builtin_status,
    label_key,
    status_title,
)
from mailramp.conversations.repository import LeadRepository
from mailramp.errors import ConflictError, NotFoundError, ValidationError
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import new_object_id
from mailramp.kit.validation import object_id_arg
from mailramp.suppression.models import Suppression, SuppressionReason
from mailramp.tracking.models import CampaignRecipient, EmailEvent, EmailTracking, EventType
from mailramp.tracking.repository import EventChange, LeadStatusMove, TrackingRepository
from mailramp.tracking.service import TrackingService

LeadSource = Literal["dashboard", "api", "cli", "inbox"]


class LeadStore(LeadRepository, TrackingRepository, CampaignRepository, Protocol):
    """What setting lead statuses reads and writes."""


class LeadService:
    """Lead statuses of a user's people, and the user's own labels."""

    def __init__(
        self, store: LeadStore, tracking: TrackingService, *, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._tracking = tracking
        self._clock = clock

    async def choices(self, user_id: str) -> list[str]:
        """Every status the user can set: the built-in ones, then their labels."""
        labels = await self._store.list_lead_labels(object_id_arg(user_id, field="user_id"))
        return [status.value for status in LeadStatus] + [label.name for label in labels]

    async def set_status(
        self,
        user_id: str,
        campaign_id: str,
        record_id: str,
        status: str | None,
        *,
        source: LeadSource,
    ) -> CampaignRecipient:
        """Give the person of the campaign's email `record_id` this lead status (None or ""
        clears it). Setting the status they already have changes nothing; a status that is
        neither built in nor one of the user's labels is refused (ValidationError, field
        `status`)."""
        record = await self._tracking.recipient(user_id, campaign_id, record_id)
        wanted = await self._known(record.user_id, status)
        person = await self._person(record.user_id, record.campaign_id, record.recipient_email)
        if person.lead_status == wanted:
            return person
        builtin = builtin_status(wanted) if wanted else None
        now = self._clock()
        suppress = None
        if builtin in SUPPRESSES:
            suppress = Suppression(
                id=new_object_id(),
                user_id=record.user_id,
                email=record.recipient_email,
                reason=SuppressionReason.MANUAL,
                campaign_id=record.campaign_id,
                detail=f"lead status: {status_title(builtin).lower()}",
                created_at=now,
            )
        event = EmailEvent.about(
            record,
            EventType.LEAD_STATUS,
            now,
            details={"from": person.lead_status, "to": wanted, "source": source},
        )
        change = EventChange(
            firsts={},
            suppress=suppress,
            stops_sequence=builtin in ENDS_SEQUENCE,
            lead_status=LeadStatusMove(was=person.lead_status, to=wanted),
        )
        await self._store.record_event(event, change)
        return await self._person(record.user_id, record.campaign_id, record.recipient_email)

    async def status_of(self, user_id: str, record: EmailTracking) -> str | None:
        """The lead status of the person of one of the user's emails (None if none)."""
        person = await self._store.get_person(
            object_id_arg(user_id, field="user_id"), record.campaign_id, record.recipient_email
        )
        return person.lead_status if person is not None else None

    async def counts(self, user_id: str, campaign_id: str) -> dict[str, int]:
        """How many of the campaign's people hold each status (statuses none hold left out)."""
        campaign = await owned_campaign(self._store, user_id, campaign_id)
        return await self._store.count_lead_statuses(campaign.user_id, campaign.campaign_id)

    async def labels(self, user_id: str) -> list[LeadLabel]:
        """The user's own labels, by name."""
        return await self._store.list_lead_labels(object_id_arg(user_id, field="user_id"))

    async def add_label(self, user_id: str, name: str) -> LeadLabel:
        """A label of the user's own; its name (1 to LABEL_MAX characters as given, not all
        whitespace; kept with its whitespace runs made one space) may not be a built-in
        status's value or title, nor one of their labels in any case."""
        owner = object_id_arg(user_id, field="user_id")
        given = str(name or "")
        clean = " ".join(given.split())
        if not clean or len(given) > LABEL_MAX:
            length = len(given) if clean else 0
            raise ValidationError(
                "name", f"a label's name is 1 to {LABEL_MAX} characters, not {length}", value=clean
            )
        if builtin_status(clean) is not None:
            raise ValidationError("name", f"{clean!r} is a built-in lead status", value=clean)
        label = LeadLabel(
            id=new_object_id(),
            user_id=owner,
            name=clean,
            key=label_key(clean),
            created_at=self._clock(),
        )
        await self._store.add_lead_label(label)
        return label

    async def delete_label(self, user_id: str, name: str) -> None:
        """Remove a label no one holds (ConflictError says how many do; NotFoundError if the
        user has no label of that name)."""
        owner = object_id_arg(user_id, field="user_id")
        label = await self._label(owner, name)
        if label is None:
            raise NotFoundError("label", name)
        holders = await self._store.count_lead_status_holders(owner, label.name)
        if holders:
            raise ConflictError(
                f"{holders} people have the lead status {label.name!r}: give them another first",
                field="name",
            )
        await self._store.delete_lead_label(owner, label.key)

    async def _known(self, user_id: str, status: str | None) -> str | None:
        """The stored form of a status the user may set (a built-in one by value or title, in
        any case; a label by name, in any case), or None to clear."""
        text = " ".join(str(status or "").split())
        if not text:
            return None
        builtin = builtin_status(text)
        if builtin is not None:
            return builtin.value
        label = await self._label(user_id, text)
        if label is None:
            choices = ", ".join(await self.choices(user_id))
            raise ValidationError(
                "status",
                f"unknown lead status {text!r}; one of: {choices} (or add a label)",
                value=text,
            )
        return label.name

    async def _label(self, user_id: str, name: str) -> LeadLabel | None:
        wanted = label_key(name)
        return next(
            (x for x in await self._store.list_lead_labels(user_id) if x.key == wanted), None
        )

    async def _person(self, user_id: str, campaign_id: str, email: str) -> CampaignRecipient:
        person = await self._store.get_person(user_id, campaign_id, email)
        if person is None:  # every email's person is stored with it
            raise NotFoundError("recipient", email)
        return person
