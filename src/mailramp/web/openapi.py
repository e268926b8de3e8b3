"""The OpenAPI document, stating what the server does: every operation named by its route
function (a stable `operationId`), every error it can answer listed with the one error shape
(`{"error": {"code", "message", "field"}}`), and the ids in paths with the format the
server checks (24-hex ObjectIds, UUID4 campaign ids).

Which errors an operation can answer follows from what it takes: a caller to authenticate
(401; 403 for a cookie session without its CSRF token on a change, and on an admin route
for anyone not an admin), a path id or another
input naming a stored object (404), a body
(400 unreadable, 413 too large), any input at all (422), a change of stored state (409),
a password (429 after too many attempts); and any of them 503 while the database is down
or busy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from mailramp.kit.ids import OBJECT_ID_SCHEMA, UUID4_SCHEMA
from mailramp.web.deps import get_admin, get_caller

PATH_IDS: dict[str, dict[str, str]] = {
    "campaign_id": UUID4_SCHEMA,
    **dict.fromkeys(
        (
            "mailbox_id",
            "user_id",
            "record_id",
            "key_id",
            "endpoint_id",
            "message_id",
            "file_id",
            "document_id",
        ),
        OBJECT_ID_SCHEMA,
    ),
}
"""The format of each id a path names (kit/validation.py checks the same)."""

WHY: dict[int, str] = {
    400: "The request could not be read: a body not UTF-8, nested too deeply, a number too "
    "long; an OAuth callback without the `state` its start made.",
    401: "No valid credential: a session cookie or `Authorization: Bearer <API key>`.",
    403: "Not allowed: a cookie session's change without its `X-CSRF-Token`, closed sign-up, "
    "or an admin route called by someone who is not an admin.",
    404: "Not found, or another user's (the two are not told apart).",
    409: "The request contradicts the stored state (a duplicate, a status that does not "
    "allow it); `message` says which.",
    413: "The body is larger than this route accepts.",
    422: "Invalid input; `field` names it.",
    429: "Too many attempts; `Retry-After` says when to try again.",
    503: "The database is unavailable or busy for now; `Retry-After` says when to try "
    "again. Nothing was changed.",
}
PASSWORD_ROUTES = frozenset({"log_in", "change_password"})
OWN_REFUSALS = {  # what a route answers beyond the rule above
    "sign_up": {403},
    "log_in": {401},
    "clerk_webhook": {401, 403, 413},  # a bad signature; not configured; too large
    "finish_oauth_link": {400},  # a callback whose `state` is missing or not ours
}


MAILBOX = "675a1f0c9b1e8a3d4c2b1a09"
EXAMPLES: dict[str, dict[str, Any]] = {
    "sign_up": {"user_name": "Ann Lee", "login_id": "ann", "password": "a long passphrase"},
    "log_in": {"login_id": "ann", "password": "a long passphrase"},
    "change_password": {
        "current_password": "a long passphrase",
        "new_password": "a longer passphrase",
    },
    "create_api_key": {"name": "CRM sync"},
    "link_mailbox": {
        "email": "ann@acme.com",
        "provider": "smtp",
        "smtp_host": "smtp.acme.com",
        "smtp_port": 587,
        "smtp_security": "starttls",
        "imap_host": "imap.acme.com",
        "password": "the mailbox's app password",
        "daily_limit": 40,
    },
    "update_mailbox": {"daily_limit": 60, "warmup_enabled": True},
    "pause_mailbox": {"reason": "moving to a new domain"},
    "start_oauth_link": {"login_hint": "ann@acme.com"},
    "set_tracking_domain": {"domain": "links.acme.com"},
    "create_campaign": {
        "mailbox_id": MAILBOX,
        "campaign_name": "Q1 outreach",
        "subject": "{{first_name}}, a question about {{company}}",
        "message": "Hi {{first_name}},\n\nWould a short call next week help?\n\nAnn",
        "duration": 72,
        "start_time": "2099-01-05T09:00:00+01:00",
        "sending_window": {"days": [0, 1, 2, 3, 4], "start_hour": 9, "end_hour": 17,
                           "timezone": "Europe/Paris"},
        "campaign_steps": [{"delay_days": 3, "message": "Hi {{first_name}}, any thoughts?"}],
    },
    "update_campaign": {"campaign_name": "Q1 outreach (EU)", "duration": 96},
    "replace_campaign_steps": {
        "campaign_steps": [{"delay_days": 2, "delay_hours": 4, "message": "Bumping this up."}]
    },
    "set_lead_status": {"status": "interested"},
    "add_lead_label": {"name": "Budget next quarter"},
    "inbox_answer": {"text": "Thanks! Tuesday 10:00 works for me.", "track_opens": False},
    "add_webhook": {"url": "https://crm.acme.com/hooks/mailramp", "kinds": ["reply"]},
    "change_webhook": {"enabled": True},
    "add_suppression": {"email": "no-more@example.com"},
    "invite_user": {"user_name": "Bob Stone", "login_id": "bob@acme.com"},
}  # fmt: skip
"""A request body per operation, shown by /docs and tried by the suite's schemathesis run
(its examples phase)."""


class ErrorFields(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable: `not_found`, `invalid`, `conflict`, `duplicate`, …")
    message: str = Field(description="For a person to read.")
    field: str | None = Field(default=None, description="The input field at fault, if one.")


class ErrorPublic(BaseModel):
    """Every error answer has this shape."""

    error: ErrorFields


def operation_id(route: APIRoute) -> str:
    """An operation's stable id: the name of its route function (`create_campaign`)."""
    return route.name


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for inner in dependant.dependencies:
        yield from _dependants(inner)


REFERENCES = frozenset({"campaign_id", "mailbox_id", "mailbox_ids"})
"""Inputs that name a stored object (answered 404 when it is not the caller's)."""


def _references(route: APIRoute, found: list[Dependant]) -> bool:
    """Whether a query parameter or a body field of `route` names a stored object."""
    if any(param.name in REFERENCES for d in found for param in d.query_params):
        return True
    body = route.body_field.field_info.annotation if route.body_field is not None else None
    return (
        isinstance(body, type)
        and issubclass(body, BaseModel)
        and bool(REFERENCES & body.model_fields.keys())
    )


def error_statuses(route: APIRoute) -> set[int]:
    """The error statuses `route` can answer (see the module's docstring)."""
    found = list(_dependants(route.dependant))
    changes = bool(set(route.methods or ()) - {"GET", "HEAD"})
    statuses: set[int] = {503, *OWN_REFUSALS.get(route.name, ())}
    if any(dependant.call is get_caller for dependant in found):
        statuses |= {401, 403} if changes else {401}
    if any(dependant.call is get_admin for dependant in found):
        statuses.add(403)
    if any(dependant.path_params for dependant in found) or _references(route, found):
        statuses.add(404)
    if route.body_field is not None:
        statuses |= {400, 413}
    inputs = any(d.path_params or d.query_params or d.header_params or d.body_params for d in found)
    if inputs or route.body_field is not None:
        statuses.add(422)
    if changes:
        statuses.add(409)
    if route.name in PASSWORD_ROUTES:
        statuses.add(429)
    return statuses


def document(app: FastAPI, routes: Iterable[APIRoute]) -> dict[str, Any]:
    """The app's OpenAPI document (built once, then kept); `routes` are the API's routes,
    as their routers declare them (what each depends on says which errors it answers)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorFields"] = ErrorFields.model_json_schema()
    components["ErrorPublic"] = ErrorPublic.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components["ErrorPublic"].pop("$defs", None)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}
    statuses = {route.name: error_statuses(route) for route in routes}
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and operation["operationId"] in EXAMPLES:
                body["example"] = EXAMPLES[operation["operationId"]]
            responses.pop("422", None)  # FastAPI's own shape; ours is below
            for status in sorted(statuses.get(operation["operationId"], {503})):
                # An answer the route declares itself (/healthz's 503) keeps its own body.
                responses.setdefault(str(status), {"description": WHY[status], "content": error})
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in PATH_IDS:
                    parameter["schema"] = {**parameter["schema"], **PATH_IDS[parameter["name"]]}
    # A file in a form, as OpenAPI 3.1 says it (contentMediaType) and, for the client
    # generators that read only OpenAPI 3.0's way, as `format: binary` too.
    for component in components.values():
        for field in component.get("properties", {}).values():
            if field.get("contentMediaType") == "application/octet-stream":
                field.setdefault("format", "binary")
    # FastAPI's validation-error shapes: no operation answers with them.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema
