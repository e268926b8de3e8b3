"""The schema's Python API, synchronous, for scripts and notebooks.

    from mailramp import db_manager
    user = db_manager.create_user(user_name="John Doe", login_id="john@example.com")

Module-level functions act on a default `DatabaseManager` built from the environment
(`MAILRAMP_DATABASE_URL`, …) on first use. Make your own for another database:
`DatabaseManager(database_url="postgresql://…")`. Calls block; underneath, the async
services run on an event loop in a background thread, so these functions also work from code
that is itself inside an event loop (call the services directly there if you can).

Every call returns typed models (`User`, `Mailbox`, `Campaign`, `CampaignMetrics`, `Page`)
and raises the errors of `mailramp.errors`. Secrets given here are encrypted before they are
stored and never come back.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from mailramp.accounts.models import User
from mailramp.campaigns.models import Campaign
from mailramp.config import Settings
from mailramp.kit.types import Page
from mailramp.legacy.models import LegacyDocument
from mailramp.mailboxes.models import Mailbox
from mailramp.metrics.models import CampaignMetrics
from mailramp.runtime import Runtime, open_runtime
from mailramp.sending.models import ImportReport
from mailramp.tracking.models import EmailTracking
from mailramp.tracking.service import RecipientFilter

T = TypeVar("T")


class DatabaseManager:
    """Synchronous access to mailramp's data, one database per instance."""

    def __init__(
        self, database_url: str | None = None, *, settings: Settings | None = None
    ) -> None:
        # Settings are read on first use, not at import, so importing never fails.
        self._database_url = database_url
        self._settings = settings
        self._lock = threading.Lock()
        self._portal_context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._runtime: Runtime | None = None

    def __repr__(self) -> str:
        state = "open" if self._runtime is not None else "not opened"
        return f"<DatabaseManager {state}>"

    def _resolved_settings(self) -> Settings:
        settings = self._settings or Settings()
        if self._database_url is not None:
            settings = settings.model_copy(update={"database_url": self._database_url})
        return settings

    def __enter__(self) -> DatabaseManager:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _started(self) -> tuple[BlockingPortal, Runtime]:
        with self._lock:
            if self._portal is None or self._runtime is None:
                context = start_blocking_portal()
                portal = context.__enter__()
                try:
                    runtime = portal.call(open_runtime, self._resolved_settings())
                except BaseException:
                    context.__exit__(None, None, None)
                    raise
                self._portal_context, self._portal, self._runtime = context, portal, runtime
            return self._portal, self._runtime

    def _run(self, call: Callable[[Runtime], Awaitable[T]]) -> T:
        portal, runtime = self._started()

        async def run() -> T:
            return await call(runtime)

        return portal.call(run)

    def close(self) -> None:
        """Close the database connections and the background loop (reopened on next use)."""
        with self._lock:
            if self._portal is not None and self._runtime is not None:
                self._portal.call(self._runtime.close)
            if self._portal_context is not None:
                self._portal_context.__exit__(None, None, None)
            self._portal_context = self._portal = self._runtime = None

    # -- users ------------------------------------------------------------------------

    def create_user(
        self,
        *,
        user_name: str,
        login_id: str,
        email: str | None = None,
        clerk_user_id: str | None = None,
        password: str | None = None,
    ) -> User:
        """Create a user (`password` is hashed with argon2id)."""
        return self._run(
            lambda r: r.accounts.create_user(
                user_name=user_name,
                login_id=login_id,
                email=email,
                clerk_user_id=clerk_user_id,
                password=password,
            )
        )

    def get_user(self, user_id: str) -> User:
        """The user with this id."""
        return self._run(lambda r: r.accounts.get_user(user_id))

    def get_user_by_login_id(self, login_id: str) -> User:
        """The user with this login id."""
        return self._run(lambda r: r.accounts.get_user_by_login_id(login_id))

    def get_user_by_clerk_id(self, clerk_user_id: str) -> User:
        """The user linked to this Clerk id."""
        return self._run(lambda r: r.accounts.get_user_by_clerk_id(clerk_user_id))

    def get_or_create_clerk_user(
        self, clerk_user_id: str, *, user_name: str | None = None, email: str | None = None
    ) -> User:
        """The user for a Clerk sign-in, created the first time."""
        return self._run(
            lambda r: r.accounts.get_or_create_clerk_user(
                clerk_user_id, user_name=user_name, email=email
            )
        )

    def update_user(self, user_id: str, **changes: Any) -> User:
        """Change `user_name`, `email` or `password`."""
        return self._run(lambda r: r.accounts.update_user(user_id, **changes))

    def record_login(self, user_id: str) -> User:
        """Set `last_login` to now."""
        return self._run(lambda r: r.accounts.record_login(user_id))

    def deactivate_user(self, user_id: str) -> User:
        """Stop the user from signing in."""
        return self._run(lambda r: r.accounts.deactivate_user(user_id))

    # -- mailboxes --------------------------------------------------------------------

    def create_mailbox(self, *, user_id: str, **fields: Any) -> Mailbox:
        """Link a mailbox (`email`, `provider`, credentials, SMTP/IMAP settings…)."""
        return self._run(lambda r: r.mailboxes.create_mailbox(user_id, **fields))

    def get_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox:
        """The user's mailbox."""
        return self._run(lambda r: r.mailboxes.get_mailbox(user_id, mailbox_id))

    def list_mailboxes(self, user_id: str, *, include_unlinked: bool = False) -> list[Mailbox]:
        """The user's mailboxes, primary first."""
        return self._run(
            lambda r: r.mailboxes.list_mailboxes(user_id, include_unlinked=include_unlinked)
        )

    def update_mailbox(self, user_id: str, mailbox_id: str, **fields: Any) -> Mailbox:
        """Change a mailbox's settings or credentials."""
        return self._run(lambda r: r.mailboxes.update_mailbox(user_id, mailbox_id, **fields))

    def set_primary_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Make this the user's primary mailbox."""
        return self._run(lambda r: r.mailboxes.set_primary(user_id, mailbox_id))

    def set_mailbox_status(
        self, user_id: str, mailbox_id: str, status: str, *, reason: str | None = None
    ) -> Mailbox:
        """Mark a mailbox active, inactive or error (with a reason)."""
        return self._run(
            lambda r: r.mailboxes.set_status(user_id, mailbox_id, status, reason=reason)
        )

    def mark_mailbox_used(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Set `last_used` to now."""
        return self._run(lambda r: r.mailboxes.mark_used(user_id, mailbox_id))

    def unlink_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Unlink a mailbox (its secrets are erased)."""
        return self._run(lambda r: r.mailboxes.unlink_mailbox(user_id, mailbox_id))

    # -- campaigns --------------------------------------------------------------------

    def create_campaign(
        self,
        *,
        user_id: str,
        mailbox_id: str,
        campaign_name: str,
        subject: str,
        message: str,
        duration: float,
        start_time: datetime,
        total_recipients: int = 0,
    ) -> Campaign:
        """Create a scheduled campaign and its metrics document."""
        return self._run(
            lambda r: r.campaigns.create_campaign(
                user_id,
                mailbox_id=mailbox_id,
                campaign_name=campaign_name,
                subject=subject,
                message=message,
                duration=duration,
                start_time=start_time,
                total_recipients=total_recipients,
            )
        )

    def get_campaign(self, user_id: str, campaign_id: str) -> Campaign:
        """The user's campaign."""
        return self._run(lambda r: r.campaigns.get_campaign(user_id, campaign_id))

    def list_campaigns(
        self, user_id: str, *, status: str | None = None, offset: int = 0, limit: int = 50
    ) -> Page[Campaign]:
        """The user's campaigns, newest first."""
        return self._run(
            lambda r: r.campaigns.list_campaigns(user_id, status=status, offset=offset, limit=limit)
        )

    def update_campaign(self, user_id: str, campaign_id: str, **fields: Any) -> Campaign:
        """Edit a scheduled campaign."""
        return self._run(lambda r: r.campaigns.update_campaign(user_id, campaign_id, **fields))

    def change_campaign_status(self, user_id: str, campaign_id: str, status: str) -> Campaign:
        """Move a campaign to another status, as the state machine allows."""
        return self._run(lambda r: r.campaigns.change_status(user_id, campaign_id, status))

    def pause_campaign(self, user_id: str, campaign_id: str) -> Campaign:
        """Pause a scheduled or active campaign."""
        return self._run(lambda r: r.campaigns.pause(user_id, campaign_id))

    def resume_campaign(self, user_id: str, campaign_id: str) -> Campaign:
        """Resume a paused campaign."""
        return self._run(lambda r: r.campaigns.resume(user_id, campaign_id))

    def cancel_campaign(self, user_id: str, campaign_id: str) -> Campaign:
        """Cancel a campaign for good."""
        return self._run(lambda r: r.campaigns.cancel(user_id, campaign_id))

    # -- recipients and sending -------------------------------------------------------

    def import_recipients(
        self, user_id: str, campaign_id: str, csv_file: str | os.PathLike[str] | BinaryIO
    ) -> ImportReport:
        """Import recipients from a CSV file (a path or a binary file object)."""
        if isinstance(csv_file, (str, os.PathLike)):
            with open(csv_file, "rb") as stream:
                return self._run(
                    lambda r: r.sending.import_recipients(user_id, campaign_id, stream)
                )
        return self._run(lambda r: r.sending.import_recipients(user_id, campaign_id, csv_file))

    def recipient_status_counts(self, user_id: str, campaign_id: str) -> dict[str, int]:
        """How many of the campaign's recipients are in each state."""
        return self._run(lambda r: r.sending.status_counts(user_id, campaign_id))

    def resend_uncertain(self, user_id: str, campaign_id: str) -> int:
        """Queue the campaign's uncertain records again (the user's choice)."""
        return self._run(lambda r: r.sending.resend_uncertain(user_id, campaign_id))

    # -- metrics and tracking ---------------------------------------------------------

    def get_campaign_metrics(
        self, campaign_id: str, *, user_id: str | None = None
    ) -> CampaignMetrics:
        """A campaign's counters and rates (scoped to `user_id` when given)."""
        return self._run(lambda r: r.metrics.get_campaign_metrics(campaign_id, user_id=user_id))

    def get_campaign_series(self, user_id: str, campaign_id: str) -> list[dict[str, Any]]:
        """Events per hour (open, click, reply, …; human or machine) for charts."""
        return self._run(lambda r: r.tracking.series(user_id, campaign_id))

    def recompute_campaign_metrics(self, user_id: str, campaign_id: str) -> CampaignMetrics:
        """Rebuild a campaign's counters and rates from its event log."""
        return self._run(lambda r: r.tracking.recompute(user_id, campaign_id))

    def list_email_tracking(
        self, user_id: str, campaign_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[EmailTracking]:
        """A campaign's per-recipient records."""
        return self._run(
            lambda r: r.tracking.list_recipients(
                user_id, campaign_id, RecipientFilter(offset=offset, limit=limit)
            )
        )

    # -- legacy collections -----------------------------------------------------------

    def list_legacy(
        self, collection: str, user_id: str, *, offset: int = 0, limit: int = 50
    ) -> Page[LegacyDocument]:
        """The user's documents in `warm_up_emails_table` or `email_campaigns`."""
        return self._run(
            lambda r: r.legacy.list_documents(collection, user_id, offset=offset, limit=limit)
        )

    def get_legacy(self, collection: str, user_id: str, document_id: str) -> LegacyDocument:
        """One of the user's legacy documents."""
        return self._run(lambda r: r.legacy.get_document(collection, user_id, document_id))

    def import_legacy(self, collection: str, documents: list[dict[str, Any]]) -> int:
        """Bring documents from a previous deployment's legacy collection (read-only after)."""
        return self._run(lambda r: r.legacy.import_documents(collection, documents))

    # -- keys -------------------------------------------------------------------------

    def rotate_keys(self) -> int:
        """Re-encrypt every stored secret under the newest key; returns how many."""
        return self._run(lambda r: r.rotate_secrets())


_default = DatabaseManager()


def _close_default() -> None:
    _default.close()


atexit.register(_close_default)

default = _default
create_user = _default.create_user
get_user = _default.get_user
get_user_by_login_id = _default.get_user_by_login_id
get_user_by_clerk_id = _default.get_user_by_clerk_id
get_or_create_clerk_user = _default.get_or_create_clerk_user
update_user = _default.update_user
record_login = _default.record_login
deactivate_user = _default.deactivate_user
create_mailbox = _default.create_mailbox
get_mailbox = _default.get_mailbox
list_mailboxes = _default.list_mailboxes
update_mailbox = _default.update_mailbox
set_primary_mailbox = _default.set_primary_mailbox
set_mailbox_status = _default.set_mailbox_status
mark_mailbox_used = _default.mark_mailbox_used
unlink_mailbox = _default.unlink_mailbox
create_campaign = _default.create_campaign
get_campaign = _default.get_campaign
list_campaigns = _default.list_campaigns
update_campaign = _default.update_campaign
change_campaign_status = _default.change_campaign_status
pause_campaign = _default.pause_campaign
resume_campaign = _default.resume_campaign
cancel_campaign = _default.cancel_campaign
get_campaign_metrics = _default.get_campaign_metrics
get_campaign_series = _default.get_campaign_series
recompute_campaign_metrics = _default.recompute_campaign_metrics
list_email_tracking = _default.list_email_tracking
list_legacy = _default.list_legacy
get_legacy = _default.get_legacy
import_legacy = _default.import_legacy
rotate_keys = _default.rotate_keys
import_recipients = _default.import_recipients
recipient_status_counts = _default.recipient_status_counts
resend_uncertain = _default.resend_uncertain
close = _default.close
