"""`mailramp migrate-legacy`: bring `email_campaigns` documents into campaigns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from mailramp.cli.common import JsonOption, emit, fail, load_settings, progress_stream, run
from mailramp.errors import MailrampError, ValidationError
from mailramp.legacy.migrate import MigrationReport, read_export
from mailramp.legacy.models import LegacyCollection
from mailramp.legacy.service import LegacyService
from mailramp.runtime import Runtime, open_mongodb
from mailramp.storage import Store

EMAIL_CAMPAIGNS = LegacyCollection.EMAIL_CAMPAIGNS


def migrate_legacy(
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            exists=True,
            dir_okay=False,
            help="A mongoexport file of email_campaigns (JSON lines or --jsonArray, Extended "
            "JSON); without it, the configured database's email_campaigns collection.",
        ),
    ] = None,
    from_mongodb: Annotated[
        str | None,
        typer.Option(
            "--from-mongodb",
            help="Read email_campaigns from this live MongoDB (mongodb://…/DBNAME), e.g. the "
            "previous deployment's database, whatever database mailramp itself runs on.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Convert legacy `email_campaigns` documents into campaigns with their metrics.

    Idempotent (a second run changes nothing), originals untouched, fields without a place
    of their own kept in the campaign's `legacy_fields`; every skipped document is reported
    with its _id and the reason. The field mapping: docs/legacy-migration.md.

    Example:

        mailramp migrate-legacy --from-mongodb "$OLD_MONGODB_URL" --dry-run
        mongoexport --uri "$OLD_MONGODB_URL" -c email_campaigns -o email_campaigns.json
        mailramp migrate-legacy --from-file email_campaigns.json
    """
    settings = load_settings()
    if from_file is not None and from_mongodb is not None:
        raise typer.BadParameter("give --from-file or --from-mongodb, not both")
    try:
        documents: list[Mapping[str, Any]] | None = (
            list(read_export(from_file)) if from_file is not None else None
        )
    except MailrampError as error:
        raise fail(error, as_json=as_json) from None

    async def work(runtime: Runtime) -> MigrationReport:
        source = documents
        if source is None:
            source = await legacy_documents(runtime.legacy, from_mongodb)
        with typer.progressbar(
            length=len(source), label="migrating", file=progress_stream()
        ) as bar:

            async def items() -> AsyncIterator[Mapping[str, Any]]:
                for document in source:
                    yield document

            return await runtime.legacy.migrate_campaigns(
                items(), dry_run=dry_run, on_document=lambda: bar.update(1)
            )

    report = run(settings, work, as_json=as_json)
    lines = [("dry run: " if dry_run else "") + report.summary()]
    lines += [f"  skipped {s.document_id}: {s.reason}" for s in report.skipped]
    emit(as_json, report, lines)


async def legacy_documents(
    legacy: LegacyService,
    from_mongodb: str | None,
    *,
    open_source: Callable[[str], Store] | None = None,
) -> list[Mapping[str, Any]]:
    """The email_campaigns documents to migrate: from a live MongoDB when its URL is given,
    else from the database mailramp runs on."""
    if from_mongodb is None:
        return await legacy.email_campaigns()
    if not from_mongodb.startswith(("mongodb://", "mongodb+srv://")):
        raise ValidationError("from_mongodb", "must be a mongodb:// or mongodb+srv:// URL")
    source = (open_source or open_mongodb)(from_mongodb)
    try:
        return await LegacyService(source).email_campaigns()
    finally:
        await source.close()
