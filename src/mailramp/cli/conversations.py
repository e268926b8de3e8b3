"""`mailramp lead …`: people's lead statuses and a user's own labels; `mailramp inbox list`."""

from __future__ import annotations

from typing import Annotated

import typer

from mailramp.cli.common import (
    JsonOption,
    command_group,
    emit,
    find_campaign,
    find_user,
    load_settings,
    run,
)
from mailramp.conversations.models import LeadLabel, shown_status, status_title
from mailramp.conversations.repository import ThreadQuery, ThreadSummary
from mailramp.runtime import Runtime
from mailramp.tracking.models import CampaignRecipient

lead_app = command_group("People's lead statuses (interested, won, …) and your own labels.")

UserOption = Annotated[str, typer.Option("--user", help="Owner: login or user _id.")]


@lead_app.command("set")
def lead_set(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    status: Annotated[
        str, typer.Argument(help="A built-in status (`mailramp lead statuses`), a label, or none.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Set a person's lead status. "not interested" and "do not contact" stop their
    sequence; "do not contact" also suppresses the address.

    Example:

        mailramp lead set 6f1c… ann@example.com "meeting booked"
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> CampaignRecipient:
        campaign = await find_campaign(runtime, campaign_id)
        user_id = campaign.user_id
        record = await runtime.tracking.find_recipient(user_id, campaign.campaign_id, email)
        wanted = None if status.strip().lower() == "none" else status
        return await runtime.leads.set_status(
            user_id, campaign.campaign_id, record.id, wanted, source="cli"
        )

    person = run(settings, work, as_json=as_json)
    shown = shown_status(person.lead_status)
    emit(as_json, person, f"{person.recipient_email}: {shown}")


@lead_app.command("counts")
def lead_counts(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
    as_json: JsonOption = False,
) -> None:
    """How many of a campaign's people hold each lead status.

    Example:

        mailramp lead counts 6f1c…
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> dict[str, int]:
        campaign = await find_campaign(runtime, campaign_id)
        return await runtime.leads.counts(campaign.user_id, campaign.campaign_id)

    counts = run(settings, work, as_json=as_json)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    lines = [f"{count:>6}  {status_title(name)}" for name, count in ordered]
    emit(as_json, counts, lines or ["no one has a lead status yet"])


@lead_app.command("statuses")
def lead_statuses(user: UserOption, as_json: JsonOption = False) -> None:
    """Every lead status a user can set: the built-in ones, then their labels.

    Example:

        mailramp lead statuses --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[str]:
        owner = await find_user(runtime, user)
        return await runtime.leads.choices(owner.user_id)

    choices = run(settings, work, as_json=as_json)
    emit(as_json, choices, [f"{value:<20} {status_title(value)}" for value in choices])


@lead_app.command("add-label")
def lead_add_label(name: str, user: UserOption, as_json: JsonOption = False) -> None:
    """Add a label of the user's own, offered beside the built-in statuses.

    Example:

        mailramp lead add-label "Needs pricing" --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> LeadLabel:
        owner = await find_user(runtime, user)
        return await runtime.leads.add_label(owner.user_id, name)

    label = run(settings, work, as_json=as_json)
    emit(as_json, label, f"label added: {label.name}")


@lead_app.command("remove-label")
def lead_remove_label(name: str, user: UserOption, as_json: JsonOption = False) -> None:
    """Remove a label no one holds.

    Example:

        mailramp lead remove-label "Needs pricing" --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> str:
        owner = await find_user(runtime, user)
        await runtime.leads.delete_label(owner.user_id, name)
        return name

    removed = run(settings, work, as_json=as_json)
    emit(as_json, {"removed": removed}, f"label removed: {removed}")


inbox_app = command_group("The unified inbox: every conversation a user's campaigns started.")


@inbox_app.command("list")
def inbox_list(
    user: UserOption,
    search: Annotated[str | None, typer.Option(help="In address, campaign, sender, text.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only this lead status.")] = None,
    unread: Annotated[bool, typer.Option("--unread", help="Only threads with unread replies.")] = (
        False
    ),
    automatic: Annotated[
        bool, typer.Option("--automatic", help="Threads of automatic replies too.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many threads (newest first).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """A user's conversations, the latest reply first: the person, the campaign, how many
    messages (unread), the lead status and the latest reply's first line.

    Example:

        mailramp inbox list --user ann@acme.com --unread
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[ThreadSummary]:
        owner = await find_user(runtime, user)
        query = ThreadQuery(
            search=search, lead_status=status, unread=unread, automatic=automatic, limit=limit
        )
        return list((await runtime.inbox.threads(owner.user_id, query)).items)

    threads = run(settings, work, as_json=as_json)
    lines = []
    for thread in threads:
        said = (thread.latest.text or thread.latest.subject).strip().splitlines()
        first_line = said[0][:80] if said else ""
        unread_part = f", {thread.unread} unread" if thread.unread else ""
        lead = f" [{status_title(thread.lead_status)}]" if thread.lead_status else ""
        lines.append(
            f"{thread.last_at:%Y-%m-%d %H:%M}  {thread.recipient_email}{lead}  "
            f"{thread.campaign_name}  ({thread.messages} messages{unread_part})  {first_line}"
        )
    emit(as_json, threads, lines or ["no conversations"])
