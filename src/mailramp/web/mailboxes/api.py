"""Linking and managing mailboxes over JSON, OAuth included."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from mailramp.mailboxes.models import OAUTH_PROVIDERS, MailboxDay, MailboxFields
from mailramp.mailboxes.schemas import MailboxCreate, MailboxUpdate, TrackingDomainChange
from mailramp.web.deps import CallerDep, RuntimeDep
from mailramp.web.responses import Public

router = APIRouter(prefix="/api/v1")


class MailboxPublic(MailboxFields, Public):
    """A mailbox as the API shows it: secrets are write-only, so it says whether each is
    set, never what it is."""

    has_password: bool
    has_access_token: bool
    has_refresh_token: bool


class PeriodPublic(Public):
    """A mailbox's figures over its last `days` days (rates in percent)."""

    days: int
    campaign_sent: int
    bounce_rate: float
    complaint_rate: float
    reply_rate: float
    warmup_sent: int
    warmup_found: int
    inbox_placement: float | None


class MailboxDayPublic(MailboxDay, Public):
    """One UTC day of the mailbox's history."""


class HealthPublic(Public):
    """A mailbox's health ([deliverability.md](deliverability.md)): its last 7 and 30
    days, its score (inbox placement of its warm-up emails over 7 days; healthy above 90),
    today's limit and its ramp, and its day-by-day history for charts."""

    mailbox: MailboxPublic
    week: PeriodPublic
    month: PeriodPublic
    score: float | None
    healthy: bool | None
    limit_today: int
    ramp: list[int]
    history: list[MailboxDayPublic]


class OAuthStarted(Public):
    """Where to send the browser to link the mailbox."""

    authorize_url: str


class MailboxStatusChange(BaseModel):
    reason: str | None = None


@router.post("/mailboxes", status_code=201, tags=["mailboxes"])
async def link_mailbox(
    body: MailboxCreate, caller: CallerDep, runtime: RuntimeDep
) -> MailboxPublic:
    """Link a mailbox; credentials are encrypted and never returned."""
    mailbox = await runtime.mailboxes.create_mailbox(
        caller.user.user_id, **body.model_dump(exclude_unset=True)
    )
    return MailboxPublic.of(mailbox)


@router.get("/mailboxes", tags=["mailboxes"])
async def list_mailboxes(
    caller: CallerDep, runtime: RuntimeDep, include_unlinked: bool = False
) -> list[MailboxPublic]:
    """Your mailboxes, primary first."""
    boxes = await runtime.mailboxes.list_mailboxes(
        caller.user.user_id, include_unlinked=include_unlinked
    )
    return [MailboxPublic.of(box) for box in boxes]


@router.get("/mailboxes/{mailbox_id}", tags=["mailboxes"])
async def get_mailbox(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> MailboxPublic:
    """One of your mailboxes."""
    return MailboxPublic.of(await runtime.mailboxes.get_mailbox(caller.user.user_id, mailbox_id))


@router.patch("/mailboxes/{mailbox_id}", tags=["mailboxes"])
async def update_mailbox(
    mailbox_id: str, body: MailboxUpdate, caller: CallerDep, runtime: RuntimeDep
) -> MailboxPublic:
    """Change settings or replace credentials."""
    mailbox = await runtime.mailboxes.update_mailbox(
        caller.user.user_id, mailbox_id, **body.model_dump(exclude_unset=True)
    )
    return MailboxPublic.of(mailbox)


@router.post("/mailboxes/{mailbox_id}/primary", tags=["mailboxes"])
async def set_primary(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> MailboxPublic:
    """Make this your primary mailbox."""
    return MailboxPublic.of(await runtime.mailboxes.set_primary(caller.user.user_id, mailbox_id))


@router.post("/mailboxes/{mailbox_id}/pause", tags=["mailboxes"])
async def pause_mailbox(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep, body: MailboxStatusChange | None = None
) -> MailboxPublic:
    """Stop sending from this mailbox."""
    reason = body.reason if body else None
    return MailboxPublic.of(
        await runtime.mailboxes.pause(caller.user.user_id, mailbox_id, reason=reason)
    )


@router.post("/mailboxes/{mailbox_id}/activate", tags=["mailboxes"])
async def activate_mailbox(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MailboxPublic:
    """Send from this mailbox again, once a test of its servers passes (409 with what
    failed, otherwise)."""
    return MailboxPublic.of(await runtime.activate_mailbox(caller.user.user_id, mailbox_id))


@router.delete("/mailboxes/{mailbox_id}", tags=["mailboxes"])
async def unlink_mailbox(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> MailboxPublic:
    """Unlink: secrets erased, history kept."""
    return MailboxPublic.of(await runtime.mailboxes.unlink_mailbox(caller.user.user_id, mailbox_id))


class PartCheckPublic(Public):
    """What one part of a mailbox answered: `ok`, or the `error` it gave."""

    ok: bool
    error: str | None = None


class MailboxTestPublic(Public):
    """What each part of the mailbox answered: `smtp` and `imap` (when it has one) for an
    SMTP mailbox, `graph` for Outlook, `gmail` for Gmail."""

    smtp: PartCheckPublic | None = None
    imap: PartCheckPublic | None = None
    graph: PartCheckPublic | None = None
    gmail: PartCheckPublic | None = None


@router.post("/mailboxes/{mailbox_id}/test", tags=["mailboxes"], response_model_exclude_none=True)
async def test_mailbox(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MailboxTestPublic:
    """Connect and log in to the mailbox's SMTP (and IMAP) servers, or for Outlook and Gmail
    mailboxes get a working token and read the account's profile; nothing is sent."""
    return MailboxTestPublic.model_validate(
        await runtime.check_mailbox(caller.user.user_id, mailbox_id)
    )


@router.post("/mailboxes/{mailbox_id}/dns-check", tags=["mailboxes"])
async def check_mailbox_domain(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MailboxPublic:
    """Check the mailbox's sending domain in DNS now (also done daily by the worker): MX,
    SPF, DKIM, DMARC and the tracking domain, each `pass`, `warn` or `fail` in `dns_checks`
    with the record to publish. When DNS does not answer, the previous checks stand and
    `dns_check_problem` says why."""
    return MailboxPublic.of(await runtime.mailboxes.check_domain(caller.user.user_id, mailbox_id))


@router.get("/mailboxes/{mailbox_id}/health", tags=["mailboxes"])
async def mailbox_health(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> HealthPublic:
    """The mailbox's health: bounce, complaint and reply rates and the inbox placement of
    its warm-up emails over 7 and 30 days, its score, today's limit, its ramp to its daily
    limit, and its last 30 days day by day."""
    return HealthPublic.of(await runtime.deliverability.health(caller.user.user_id, mailbox_id))


@router.post("/mailboxes/{mailbox_id}/resume", tags=["mailboxes"])
async def resume_mailbox(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> MailboxPublic:
    """Lift the brake on the mailbox's campaign sends (`brake_reason` said why it stopped;
    409 when no brake holds it). The same brake then waits 7 days unless its rate rises."""
    return MailboxPublic.of(
        await runtime.deliverability.resume_mailbox(caller.user.user_id, mailbox_id)
    )


@router.put("/mailboxes/{mailbox_id}/tracking-domain", tags=["mailboxes"])
async def set_tracking_domain(
    mailbox_id: str, body: TrackingDomainChange, caller: CallerDep, runtime: RuntimeDep
) -> MailboxPublic:
    """Give the mailbox its own tracking domain. It is checked in DNS at once and its links
    use it only once it leads here (`tracking_domain_verified_at` set); otherwise
    `tracking_domain_problem` says what is wrong and which record to add."""
    return MailboxPublic.of(
        await runtime.mailboxes.set_tracking_domain(caller.user.user_id, mailbox_id, body.domain)
    )


@router.post("/mailboxes/{mailbox_id}/tracking-domain/check", tags=["mailboxes"])
async def check_tracking_domain(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MailboxPublic:
    """Check the mailbox's tracking domain in DNS again (after adding the record)."""
    return MailboxPublic.of(
        await runtime.mailboxes.check_tracking_domain(caller.user.user_id, mailbox_id)
    )


@router.delete("/mailboxes/{mailbox_id}/tracking-domain", tags=["mailboxes"])
async def remove_tracking_domain(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep
) -> MailboxPublic:
    """Stop using a tracking domain: the mailbox's links use the public address again."""
    return MailboxPublic.of(
        await runtime.mailboxes.set_tracking_domain(caller.user.user_id, mailbox_id, None)
    )


OAuthProviderName = Annotated[
    str, Path(json_schema_extra={"enum": [provider.value for provider in OAUTH_PROVIDERS]})
]
"""The providers a mailbox is linked with over OAuth, as a path names them."""


class OAuthStart(BaseModel):
    login_hint: str | None = Field(
        default=None, max_length=320, description="The address to pre-fill on the sign-in page."
    )


@router.post("/mailboxes/oauth/{provider}/start", tags=["mailboxes"])
async def start_oauth_link(
    provider: OAuthProviderName,
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    body: OAuthStart | None = None,
) -> OAuthStarted:
    """Begin linking an Outlook or Gmail mailbox: send the browser to `authorize_url`; the
    provider sends it back to the callback within 10 minutes."""
    url = runtime.oauth.start(
        provider, caller.user.user_id, login_hint=body.login_hint if body else None
    )
    return OAuthStarted(authorize_url=url)


@router.get(
    "/mailboxes/oauth/{provider}/callback",
    tags=["mailboxes"],
    response_model=None,
    responses={
        200: {"model": MailboxPublic, "description": "Linked (with `Accept: application/json`)."},
        303: {"description": "Linked: on to the dashboard's mailboxes."},
    },
)
async def finish_oauth_link(
    provider: OAuthProviderName,
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> MailboxPublic | RedirectResponse:
    """Where the provider sends the browser back: link the mailbox (or refresh the tokens of
    the one with the same address), then go to the dashboard's mailboxes (JSON when the
    request accepts `application/json`)."""
    mailbox = await runtime.oauth.callback(
        provider,
        caller.user.user_id,
        code=code,
        state=state,
        error=error,
        error_description=error_description,
    )
    if "application/json" in request.headers.get("accept", ""):
        return MailboxPublic.of(mailbox)
    return RedirectResponse("/mailboxes", status_code=303)
