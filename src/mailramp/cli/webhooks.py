"""`mailramp webhook …`: a user's outgoing webhook endpoints."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mailramp.cli.common import JsonOption, command_group, emit, find_user, load_settings, run
from mailramp.runtime import Runtime
from mailramp.webhooks.models import WebhookAttempt, WebhookEndpoint

webhook_app = command_group("Outgoing webhooks: URLs that receive a user's events.")

KIND_HELP = "An event type the endpoint takes (repeat it); every type if none."
UserOption = Annotated[str, typer.Option("--user", help="Owner: login or user _id.")]


def _shown(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint without its (encrypted) secrets."""
    return endpoint.model_dump(mode="json", exclude={"secret", "previous_secret"})


@webhook_app.command("add")
def webhook_add(
    url: str,
    user: UserOption,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="An event type it takes (repeat); all if none"),
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Send a user's events to URL; prints the signing secret, shown this once.

    Example:

        mailramp webhook add https://crm.example.com/hooks --user ann@acme.com --kind reply
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> tuple[WebhookEndpoint, str]:
        owner = await find_user(runtime, user)
        return await runtime.webhooks.add_endpoint(
            owner.user_id, url, kinds=kind or [], description=description
        )

    endpoint, secret = run(settings, work, as_json=as_json)
    emit(
        as_json,
        {**_shown(endpoint), "secret": secret},
        [f"endpoint {endpoint.id} added for {endpoint.url}", f"signing secret: {secret}"],
    )


@webhook_app.command("list")
def webhook_list(user: UserOption, as_json: JsonOption = False) -> None:
    """A user's endpoints: id, state, URL and the events they take.

    Example:

        mailramp webhook list --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[WebhookEndpoint]:
        owner = await find_user(runtime, user)
        return await runtime.webhooks.list_endpoints(owner.user_id)

    endpoints = run(settings, work, as_json=as_json)
    lines = [
        f"{e.id}  {'enabled' if e.enabled else 'disabled'}  {e.url}  "
        f"{','.join(e.kinds) or 'all events'}"
        + (f"  ({e.disabled_reason})" if e.disabled_reason else "")
        for e in endpoints
    ]
    emit(as_json, [_shown(e) for e in endpoints], lines or ["no webhook endpoints"])


@webhook_app.command("test")
def webhook_test(endpoint_id: str, user: UserOption, as_json: JsonOption = False) -> None:
    """Send a `webhook.test` message now and print what the endpoint answered; exit 1 if it
    did not answer 2xx.

    Example:

        mailramp webhook test 6f1c… --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> WebhookAttempt:
        owner = await find_user(runtime, user)
        return await runtime.webhooks.send_test(owner.user_id, endpoint_id)

    attempt = run(settings, work, as_json=as_json)
    answer = f"HTTP {attempt.status_code}" if attempt.status_code else "no answer"
    problem = f" ({attempt.error})" if attempt.error else ""
    emit(as_json, attempt, f"{answer} in {attempt.latency_ms} ms{problem}")
    if attempt.status_code is None or not 200 <= attempt.status_code < 300:
        raise typer.Exit(1)
