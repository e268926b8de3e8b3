"""The JSON API under /api/v1. Every route acts as the signed-in user; another user's ids
are 404s (the services scope every query)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field, SecretStr

from mailramp.auth.service import NewSession
from mailramp.campaigns.schemas import CampaignCreate, CampaignUpdate
from mailramp.kit.types import Page
from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.schemas import MailboxCreate, MailboxUpdate
from mailramp.web.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CallerDep,
    RuntimeDep,
    set_session_cookies,
)

router = APIRouter(prefix="/api/v1")

Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]


def _json(model: BaseModel) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return data


def _page(page: Page[Any]) -> dict[str, Any]:
    return {
        "items": [_json(item) for item in page.items],
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
    }


def _mailbox(mailbox: Mailbox) -> dict[str, Any]:
    # Secrets are write-only: the API says whether they are set, never what they are.
    return _json(mailbox) | {
        "has_password": mailbox.has_password,
        "has_access_token": mailbox.has_access_token,
        "has_refresh_token": mailbox.has_refresh_token,
    }


# -- sign-in ------------------------------------------------------------------------------


class SignUp(BaseModel):
    user_name: str
    login_id: str
    password: SecretStr
    email: str | None = None


class LogIn(BaseModel):
    login_id: str
    password: SecretStr


class PasswordChange(BaseModel):
    current_password: SecretStr
    new_password: SecretStr


def _start_session(request: Request, response: Response, new: NewSession) -> dict[str, Any]:
    set_session_cookies(response, request, new)
    return {"user": _json(new.user), "csrf_token": new.csrf_token}


@router.post("/auth/signup", status_code=201, tags=["sign-in"])
async def sign_up(
    body: SignUp, request: Request, response: Response, runtime: RuntimeDep
) -> dict[str, Any]:
    """Create a local account and sign in (the session cookie is set)."""
    new = await runtime.auth.sign_up(
        user_name=body.user_name,
        login_id=body.login_id,
        password=body.password.get_secret_value(),
        email=body.email,
        user_agent=request.headers.get("user-agent"),
    )
    return _start_session(request, response, new)


@router.post("/auth/login", tags=["sign-in"])
async def log_in(
    body: LogIn, request: Request, response: Response, runtime: RuntimeDep
) -> dict[str, Any]:
    """Sign in with login id and password (the session cookie is set)."""
    new = await runtime.auth.log_in(
        body.login_id,
        body.password.get_secret_value(),
        user_agent=request.headers.get("user-agent"),
        client_address=request.client.host if request.client else None,
    )
    return _start_session(request, response, new)


@router.post("/auth/logout", status_code=204, tags=["sign-in"])
async def log_out(caller: CallerDep, response: Response, runtime: RuntimeDep) -> Response:
    """End this session."""
    if caller.session is not None:
        await runtime.auth.log_out(caller.session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.post("/auth/password", tags=["sign-in"])
async def change_password(
    body: PasswordChange, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Change the password; every other session ends and every API key is revoked."""
    changed = await runtime.auth.change_password(
        caller.user,
        caller.session,
        current=body.current_password.get_secret_value(),
        new=body.new_password.get_secret_value(),
    )
    return {"ended_sessions": changed.sessions_ended, "revoked_api_keys": changed.api_keys_revoked}


@router.get("/me", tags=["account"])
async def me(caller: CallerDep) -> dict[str, Any]:
    """The signed-in user."""
    return _json(caller.user)


# -- API keys -----------------------------------------------------------------------------


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    password: SecretStr | None = Field(
        default=None, description="The account's password; required when you call with an API key."
    )


@router.post("/api-keys", status_code=201, tags=["account"])
async def create_api_key(
    body: ApiKeyCreate, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """A new API key; `key` is shown this once and stored only as a hash. Called with an
    API key, it needs the account's `password` too."""
    confirm = None
    if caller.api_key:
        confirm = body.password.get_secret_value() if body.password else ""
    key, secret = await runtime.auth.create_api_key(
        caller.user.user_id, name=body.name, confirm_password=confirm
    )
    return _json(key) | {"key": secret}


@router.get("/api-keys", tags=["account"])
async def list_api_keys(caller: CallerDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    """Your keys (prefixes only)."""
    return [_json(key) for key in await runtime.auth.list_api_keys(caller.user.user_id)]


@router.delete("/api-keys/{key_id}", status_code=204, tags=["account"])
async def revoke_api_key(key_id: str, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """Revoke a key at once."""
    await runtime.auth.revoke_api_key(caller.user.user_id, key_id)
    return Response(status_code=204)


# -- mailboxes ----------------------------------------------------------------------------


class MailboxStatusChange(BaseModel):
    reason: str | None = None


@router.post("/mailboxes", status_code=201, tags=["mailboxes"])
async def link_mailbox(
    body: MailboxCreate, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Link a mailbox; credentials are encrypted and never returned."""
    mailbox = await runtime.mailboxes.create_mailbox(
        caller.user.user_id, **body.model_dump(exclude_unset=True)
    )
    return _mailbox(mailbox)


@router.get("/mailboxes", tags=["mailboxes"])
async def list_mailboxes(
    caller: CallerDep, runtime: RuntimeDep, include_unlinked: bool = False
) -> list[dict[str, Any]]:
    """Your mailboxes, primary first."""
    boxes = await runtime.mailboxes.list_mailboxes(
        caller.user.user_id, include_unlinked=include_unlinked
    )
    return [_mailbox(box) for box in boxes]


@router.get("/mailboxes/{mailbox_id}", tags=["mailboxes"])
async def get_mailbox(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    """One of your mailboxes."""
    return _mailbox(await runtime.mailboxes.get_mailbox(caller.user.user_id, mailbox_id))


@router.patch("/mailboxes/{mailbox_id}", tags=["mailboxes"])
async def update_mailbox(
    mailbox_id: str, body: MailboxUpdate, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Change settings or replace credentials."""
    mailbox = await runtime.mailboxes.update_mailbox(
        caller.user.user_id, mailbox_id, **body.model_dump(exclude_unset=True)
    )
    return _mailbox(mailbox)


@router.post("/mailboxes/{mailbox_id}/primary", tags=["mailboxes"])
async def set_primary(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Make this your primary mailbox."""
    return _mailbox(await runtime.mailboxes.set_primary(caller.user.user_id, mailbox_id))


@router.post("/mailboxes/{mailbox_id}/pause", tags=["mailboxes"])
async def pause_mailbox(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep, body: MailboxStatusChange | None = None
) -> dict[str, Any]:
    """Stop sending from this mailbox."""
    reason = body.reason if body else None
    return _mailbox(
        await runtime.mailboxes.set_status(
            caller.user.user_id, mailbox_id, "inactive", reason=reason
        )
    )


@router.post("/mailboxes/{mailbox_id}/activate", tags=["mailboxes"])
async def activate_mailbox(
    mailbox_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Send from this mailbox again."""
    return _mailbox(await runtime.mailboxes.set_status(caller.user.user_id, mailbox_id, "active"))


@router.delete("/mailboxes/{mailbox_id}", tags=["mailboxes"])
async def unlink_mailbox(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Unlink: secrets erased, history kept."""
    return _mailbox(await runtime.mailboxes.unlink_mailbox(caller.user.user_id, mailbox_id))


# -- OAuth mailboxes ----------------------------------------------------------------------


class OAuthStart(BaseModel):
    login_hint: str | None = Field(
        default=None, max_length=320, description="The address to pre-fill on the sign-in page."
    )


@router.post("/mailboxes/oauth/{provider}/start", tags=["mailboxes"])
async def start_oauth_link(
    provider: str,
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    body: OAuthStart | None = None,
) -> dict[str, Any]:
    """Begin linking an Outlook or Gmail mailbox: send the browser to `authorize_url`; the
    provider sends it back to the callback within 10 minutes."""
    url = runtime.oauth.start(
        provider, caller.user.user_id, login_hint=body.login_hint if body else None
    )
    return {"authorize_url": url}


@router.get("/mailboxes/oauth/{provider}/callback", tags=["mailboxes"], response_model=None)
async def finish_oauth_link(
    provider: str,
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> dict[str, Any] | RedirectResponse:
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
        return _mailbox(mailbox)
    return RedirectResponse("/mailboxes", status_code=303)


# -- campaigns ----------------------------------------------------------------------------


@router.post("/campaigns", status_code=201, tags=["campaigns"])
async def create_campaign(
    body: CampaignCreate, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Create a scheduled campaign (its metrics document comes with it)."""
    campaign = await runtime.campaigns.create_campaign(caller.user.user_id, **body.model_dump())
    return _json(campaign)


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(
    caller: CallerDep,
    runtime: RuntimeDep,
    status: str | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Your campaigns, newest first."""
    page = await runtime.campaigns.list_campaigns(
        caller.user.user_id, status=status, offset=offset, limit=limit
    )
    return _page(page)


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
async def get_campaign(campaign_id: str, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    """One of your campaigns."""
    return _json(await runtime.campaigns.get_campaign(caller.user.user_id, campaign_id))


@router.patch("/campaigns/{campaign_id}", tags=["campaigns"])
async def update_campaign(
    campaign_id: str, body: CampaignUpdate, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Edit a scheduled campaign."""
    campaign = await runtime.campaigns.update_campaign(
        caller.user.user_id, campaign_id, **body.model_dump(exclude_unset=True)
    )
    return _json(campaign)


@router.post("/campaigns/{campaign_id}/launch", tags=["campaigns"])
async def launch_campaign(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Start sending now: a scheduled campaign's window moves to begin now (same duration);
    a paused one resumes."""
    return _json(await runtime.campaigns.launch(caller.user.user_id, campaign_id))


@router.post("/campaigns/{campaign_id}/pause", tags=["campaigns"])
async def pause_campaign(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Stop sending until resumed."""
    return _json(await runtime.campaigns.pause(caller.user.user_id, campaign_id))


@router.post("/campaigns/{campaign_id}/resume", tags=["campaigns"])
async def resume_campaign(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Continue; what is left is spread over what is left of the window."""
    return _json(await runtime.campaigns.resume(caller.user.user_id, campaign_id))


@router.post("/campaigns/{campaign_id}/cancel", tags=["campaigns"])
async def cancel_campaign(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Stop for good."""
    return _json(await runtime.campaigns.cancel(caller.user.user_id, campaign_id))


@router.post("/campaigns/{campaign_id}/resend-uncertain", tags=["campaigns"])
async def resend_uncertain(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Queue `uncertain` records again (their recipients may get two copies)."""
    queued = await runtime.sending.resend_uncertain(caller.user.user_id, campaign_id)
    return {"queued": queued}


@router.post("/campaigns/{campaign_id}/recipients", tags=["campaigns"])
async def upload_recipients(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep, file: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    """Import a CSV of recipients; the import report is the response."""
    report = await runtime.sending.import_recipients(caller.user.user_id, campaign_id, file.file)
    return {
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "suppressed": report.suppressed,
        "invalid_count": report.invalid_count,
        "invalid": [
            {"row": row.row, "value": row.value, "reason": row.reason} for row in report.invalid
        ],
        "rows": report.rows,
        "total_recipients": report.total_recipients,
    }


@router.get("/campaigns/{campaign_id}/metrics", tags=["campaigns"])
async def campaign_metrics(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Counters and rates (human figures included)."""
    return _json(
        await runtime.metrics.get_campaign_metrics(campaign_id, user_id=caller.user.user_id)
    )


@router.get("/campaigns/{campaign_id}/series", tags=["campaigns"])
async def campaign_series(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[dict[str, Any]]:
    """Events per hour, for charts."""
    rows = await runtime.tracking.series(caller.user.user_id, campaign_id)
    return [row | {"hour": row["hour"].isoformat()} for row in rows]


@router.post("/mailboxes/{mailbox_id}/test", tags=["mailboxes"])
async def test_mailbox(mailbox_id: str, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Connect and log in to the mailbox's SMTP (and IMAP) servers, or for Outlook and Gmail
    mailboxes get a working token and read the account's profile; nothing is sent."""
    return await runtime.check_mailbox(caller.user.user_id, mailbox_id)


# -- recipients, export -------------------------------------------------------------------


@router.get("/campaigns/{campaign_id}/recipients", tags=["campaigns"])
async def list_recipients(
    campaign_id: str,
    caller: CallerDep,
    runtime: RuntimeDep,
    status: str | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """The campaign's recipients with their state, in send order."""
    page = await runtime.tracking.list_recipients(
        caller.user.user_id, campaign_id, status=status, offset=offset, limit=limit
    )
    return _page(page)


@router.get("/campaigns/{campaign_id}/recipients/{record_id}/events", tags=["campaigns"])
async def recipient_events(
    campaign_id: str, record_id: str, caller: CallerDep, runtime: RuntimeDep
) -> list[dict[str, Any]]:
    """What happened to one recipient's email, oldest first."""
    _, events = await runtime.tracking.recipient_events(caller.user.user_id, campaign_id, record_id)
    return [_json(event) for event in events]


@router.get("/campaigns/{campaign_id}/export.csv", tags=["campaigns"])
async def export_recipients(
    campaign_id: str, caller: CallerDep, runtime: RuntimeDep
) -> StreamingResponse:
    """Every recipient and what happened, as CSV (merge variables included)."""
    campaign = await runtime.campaigns.get_campaign(caller.user.user_id, campaign_id)

    async def rows() -> AsyncIterator[str]:
        async for cells in runtime.sending.export_rows(campaign):
            yield _csv_line(cells)

    filename = f"campaign-{campaign.campaign_id}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_line(cells: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()


# -- suppression list, legacy -------------------------------------------------------------


class SuppressionCreate(BaseModel):
    email: str


@router.get("/suppressions", tags=["suppression"])
async def list_suppressions(
    caller: CallerDep,
    runtime: RuntimeDep,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Addresses none of your campaigns will send to."""
    page = await runtime.suppression.list_suppressions(
        caller.user.user_id, offset=offset, limit=limit
    )
    return _page(page)


@router.post("/suppressions", status_code=201, tags=["suppression"])
async def add_suppression(
    body: SuppressionCreate, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Never send to this address again."""
    email, added = await runtime.suppression.add(caller.user.user_id, body.email)
    return {"email": email, "added": added}


@router.delete("/suppressions/{email}", status_code=204, tags=["suppression"])
async def remove_suppression(email: str, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """Allow an address again."""
    await runtime.suppression.remove(caller.user.user_id, email)
    return Response(status_code=204)


@router.get("/legacy/{collection}", tags=["legacy"])
async def list_legacy(
    collection: str,
    caller: CallerDep,
    runtime: RuntimeDep,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Your documents of `warm_up_emails_table` or `email_campaigns` (read-only)."""
    page = await runtime.legacy.list_documents(
        collection, caller.user.user_id, offset=offset, limit=limit
    )
    return _page(page)


@router.get("/legacy/{collection}/{document_id}", tags=["legacy"])
async def get_legacy(
    collection: str, document_id: str, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """One legacy document."""
    return _json(await runtime.legacy.get_document(collection, caller.user.user_id, document_id))
