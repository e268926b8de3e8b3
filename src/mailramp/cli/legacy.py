"""`mailramp migrate-legacy`: bring `email_campaigns` documents into campaigns and
`warm_up_emails_table` documents into warm-up emails."""

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
WARM_UP_EMAILS = LegacyCollection.WARM_UP_EMAILS


def migrate_legacy(
    collection: Annotated[
        LegacyCollection | None,
        typer.Option(
            "--collection",
            help="Migrate only this collection. Default: both (campaigns first); with "
            "--from-file, email_campaigns (an export holds one collection).",
        ),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            exists=True,
            dir_okay=False,
            help="A mongoexport file of the collection (JSON lines or --jsonArray, Extended "
            "JSON); without it, the configured database's legacy collections.",
        ),
    ] = None,
    from_mongodb: Annotated[
        str | None,
        typer.Option(
            "--from-mongodb",
            help="Read the legacy collections from this live MongoDB (mongodb://…/DBNAME), "
            "e.g. the previous deployment's database, whatever database mailramp runs on.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Carry the legacy collections into mailramp's own tables: `email_campaigns` into
    campaigns with their metrics, `warm_up_emails_table` into warm-up emails (where both
    ends are linked mailboxes).

    Idempotent (a second run changes nothing), originals untouched, every skipped document
    reported with its _id and the reason. The field mappings: docs/legacy-migration.md.
    --json prints one report per collection, keyed by the collection's name.

    Example:

        mailramp migrate-legacy --from-mongodb "$OLD_MONGODB_URL" --dry-run
        mongoexport --uri "$OLD_MONGODB_URL" -c email_campaigns -o email_campaigns.json
        mailramp migrate-legacy --from-file email_campaigns.json
        mailramp migrate-legacy --collection warm_up_emails_table --from-file warm_up.json
    """
    settings = load_settings()
    if from_file is not None and from_mongodb is not None:
        raise typer.BadParameter("give --from-file or --from-mongodb, not both")
    if collection is not None:
        collections = [collection]
    else:
        collections = (
            [EMAIL_CAMPAIGNS] if from_file is not None else [EMAIL_CAMPAIGNS, WARM_UP_EMAILS]
        )
    try:
        from_export: list[Mapping[str, Any]] | None = (
            list(read_export(from_file)) if from_file is not None else None
        )
    except MailrampError as error:
        raise fail(error, as_json=as_json) from None

    async def work(runtime: Runtime) -> dict[str, MigrationReport]:
        reports = {}
        for name in collections:
            source = from_export
            if source is None:
                source = await legacy_documents(runtime.legacy, from_mongodb, name)
            reports[name.value] = await _migrate(runtime.legacy, name, source, dry_run=dry_run)
        return reports

    reports = run(settings, work, as_json=as_json)
    lines = []
    for report in reports.values():
        lines.append(("dry run: " if dry_run else "") + report.summary())
        lines += [f"  skipped {s.document_id}: {s.reason}" for s in report.skipped]
    emit(as_json, reports, lines)


async def _migrate(
    legacy: LegacyService,
    collection: LegacyCollection,
    documents: list[Mapping[str, Any]],
    *,
    dry_run: bool,
) -> MigrationReport:
    with typer.progressbar(
        length=len(documents), label=f"migrating {collection.value}", file=progress_stream()
    ) as bar:

        async def items() -> AsyncIterator[Mapping[str, Any]]:
            for document in documents:
                yield document

        migrate = (
            legacy.migrate_campaigns
            if collection is EMAIL_CAMPAIGNS
            else legacy.migrate_warmup_emails
        )
        return await migrate(items(), dry_run=dry_run, on_document=lambda: bar.update(1))


async def legacy_documents(
    legacy: LegacyService,
    from_mongodb: str | None,
    collection: LegacyCollection = EMAIL_CAMPAIGNS,
    *,
    open_source: Callable[[str], Store] | None = None,
) -> list[Mapping[str, Any]]:
    """The documents of a legacy collection to migrate: from a live MongoDB when its URL is
    given, else from the database mailramp runs on."""
    if from_mongodb is None:
        return await legacy.documents_of(collection)
    if not from_mongodb.startswith(("mongodb://", "mongodb+srv://")):
        raise ValidationError("from_mongodb", "must be a mongodb:// or mongodb+srv:// URL")
    source = (open_source or open_mongodb)(from_mongodb)
    try:
        return await LegacyService(source).documents_of(collection)
    finally:
        await source.close()
