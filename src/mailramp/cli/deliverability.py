"""`mailramp warmup …`: the warm-up pool from the shell."""

from __future__ import annotations

from typing import Annotated

import typer

from mailramp.cli.common import JsonOption, command_group, emit, find_user, load_settings, run
from mailramp.deliverability.service import WarmupStatusRow
from mailramp.runtime import Runtime

warmup_app = command_group("The warm-up pool.")


@warmup_app.command("status")
def warmup_status(
    user: Annotated[
        str | None, typer.Option("--user", help="Only this owner's mailboxes: login or _id.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Each mailbox's warm-up today: whether it takes part, today's warm-up volume and what
    left so far, the inbox placement of its warm-up emails over 7 days (its health score),
    today's daily limit, and whether a brake holds its campaign sends.

    Example:

        mailramp warmup status --user ann@acme.com
    """
    settings = load_settings()

    async def work(runtime: Runtime) -> list[WarmupStatusRow]:
        owner = await find_user(runtime, user) if user else None
        return await runtime.deliverability.warmup_status(owner.user_id if owner else None)

    rows = run(settings, work, as_json=as_json)
    lines = [
        f"{row.email:<32} "
        + (
            f"warm-up {row.warmup_sent_today}/{row.volume_today} today"
            if row.enabled
            else "warm-up off"
        )
        + "  placement "
        + ("-" if row.inbox_placement is None else f"{row.inbox_placement:g} %")
        + f"  limit {row.limit_today}/day"
        + ("  BRAKED" if row.braked else "")
        for row in rows
    ] or ["no mailbox linked"]
    emit(as_json, rows, lines)
