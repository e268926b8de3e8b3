"""Storage adapters. `Store` is what every adapter implements; services see only protocols."""

from __future__ import annotations

from typing import Protocol

from mailramp.accounts.repository import UserRepository
from mailramp.auth.repository import AuditRepository, AuthRepository
from mailramp.campaigns.repository import CampaignQueue, CampaignRepository
from mailramp.conversations.repository import InboxRepository, LeadRepository
from mailramp.deliverability.repository import DeliverabilityRepository, WarmupRepository
from mailramp.kit.secrets import InstanceSecretRepository
from mailramp.legacy.repository import LegacyRepository
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.metrics.repository import MetricsRepository
from mailramp.sending.repository import SendingRepository
from mailramp.suppression.repository import SuppressionRepository
from mailramp.tracking.repository import TrackingRepository
from mailramp.webhooks.repository import WebhookRepository


class Store(
    UserRepository,
    MailboxRepository,
    CampaignRepository,
    CampaignQueue,
    MetricsRepository,
    TrackingRepository,
    LegacyRepository,
    SendingRepository,
    SuppressionRepository,
    AuthRepository,
    AuditRepository,
    InstanceSecretRepository,
    DeliverabilityRepository,
    WarmupRepository,
    LeadRepository,
    InboxRepository,
    WebhookRepository,
    Protocol,
):
    """Every repository of every domain, on one backend."""

    backend: str

    async def ping(self) -> None:
        """Return once the database answered a trivial query; raise if it does not (a
        database that is down is not an empty one, which `schema_version` reports as None)."""
        ...

    async def schema_version(self) -> str | None:
        """The applied schema revision, or None on an empty database."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
