"""`mailramp migrate-legacy --from-file` on a mongoexport file, as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bson import ObjectId

from tests.support.processes import clean_environment, plain


def _mailramp(
    directory: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailramp", *args],
        cwd=directory,
        env=clean_environment(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_mongoexport_file_migrates_once(tmp_path: Path) -> None:
    made = _mailramp(
        tmp_path, "user", "create", "--name", "Ann", "--login", "ann@acme.com",
        "--password-stdin", "--json", stdin="a long enough passphrase\n",
    )  # fmt: skip
    user_id = json.loads(made.stdout)["_id"]
    linked = _mailramp(
        tmp_path, "mailbox", "add", "--user", "ann@acme.com", "--email", "ann@acme.com",
        "--smtp-host", "smtp.example.com", "--password-stdin", "--json", stdin="pw\n",
    )  # fmt: skip
    assert linked.returncode == 0, linked.stderr
    good, bad = str(ObjectId()), str(ObjectId())
    export = tmp_path / "email_campaigns.json"
    export.write_text(
        json.dumps(
            {
                "_id": {"$oid": good},
                "user_id": {"$oid": user_id},
                "from_email": "ann@acme.com",
                "subject": "Old campaign",
                "body": "Hello",
                "start_time": {"$date": {"$numberLong": "1709283600000"}},
                "duration": {"$numberInt": "24"},
                "status": "done",
                "sent": 10,
                "opens": 4,
            }
        )
        + "\n"
        + json.dumps({"_id": {"$oid": bad}, "user_id": {"$oid": user_id}, "subject": "x"})
        + "\n"
    )

    dry = _mailramp(tmp_path, "migrate-legacy", "--from-file", str(export), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    summary = (
        "dry run: email_campaigns: 2 document(s) read: would migrate 1, 0 already migrated,"
        " 1 skipped"
    )
    assert summary in plain(dry.stdout)
    assert f"skipped {bad}: no mailbox_id or sender address" in plain(dry.stdout)
    assert "migrating" in plain(dry.stderr)  # the progress bar
    listed = _mailramp(tmp_path, "campaign", "list", "--user", "ann@acme.com", "--json")
    assert json.loads(listed.stdout) == []

    done = _mailramp(tmp_path, "migrate-legacy", "--from-file", str(export), "--json")
    (report,) = json.loads(done.stdout).values()
    assert report["collection"] == "email_campaigns"
    assert (report["migrated"], report["already_migrated"], report["read"]) == (1, 0, 2)
    assert report["skipped"] == [{"document_id": bad, "reason": "no mailbox_id or sender address"}]
    (campaign,) = json.loads(
        _mailramp(tmp_path, "campaign", "list", "--user", "ann@acme.com", "--json").stdout
    )
    assert campaign["_id"] == good and campaign["status"] == "completed"
    assert campaign["start_time"].startswith("2024-03-01T09:00:00")
    stats = json.loads(
        _mailramp(tmp_path, "campaign", "stats", campaign["campaign_id"], "--json").stdout
    )
    assert (stats["metrics"]["total_sent"], stats["metrics"]["open_rate"]) == (10, 40.0)

    again = json.loads(
        _mailramp(tmp_path, "migrate-legacy", "--from-file", str(export), "--json").stdout
    )["email_campaigns"]
    assert (again["migrated"], again["already_migrated"]) == (0, 1)


def test_a_warm_up_export_carries_over_between_linked_mailboxes(tmp_path: Path) -> None:
    for name, address in (("Ann", "ann@one.example"), ("Bob", "bob@two.example")):
        made = _mailramp(
            tmp_path, "user", "create", "--name", name, "--login", address,
            "--password-stdin", stdin="a long enough passphrase\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        linked = _mailramp(
            tmp_path, "mailbox", "add", "--user", address, "--email", address,
            "--smtp-host", "smtp.example.com", "--password-stdin", stdin="pw\n",
        )  # fmt: skip
        assert linked.returncode == 0, linked.stderr
    carried, elsewhere = str(ObjectId()), str(ObjectId())
    export = tmp_path / "warm_up_emails_table.json"
    export.write_text(
        json.dumps(
            {
                "_id": {"$oid": carried},
                "from_email": "ann@one.example",
                "to_email": "bob@two.example",
                "subject": "Notes",
                "sent_at": {"$date": "2026-01-05T10:00:00Z"},
                "status": "delivered",
                "landed_in": "spam",
            }
        )
        + "\n"
        + json.dumps(
            {
                "_id": {"$oid": elsewhere},
                "from_email": "ann@one.example",
                "to_email": "carl@three.example",
                "sent_at": {"$date": "2026-01-05T11:00:00Z"},
                "status": "sent",
            }
        )
        + "\n"
    )
    args = ("migrate-legacy", "--collection", "warm_up_emails_table", "--from-file", str(export))

    done = _mailramp(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    shown = plain(done.stdout)
    assert (
        "warm_up_emails_table: 2 document(s) read: migrated 1, 0 already migrated, 1 skipped"
        in shown
    )
    assert (
        f"skipped {elsewhere}: the recipient carl@three.example is not a mailbox linked here"
        in shown
    )
    again = json.loads(_mailramp(tmp_path, *args, "--json").stdout)["warm_up_emails_table"]
    assert (again["read"], again["migrated"], again["already_migrated"]) == (2, 0, 1)
    unknown = _mailramp(
        tmp_path, "migrate-legacy", "--collection", "warmup", "--from-file", str(export)
    )
    assert unknown.returncode == 2 and "warm_up_emails_table" in plain(unknown.stderr)


def test_a_broken_export_file_is_refused_naming_the_line(tmp_path: Path) -> None:
    export = tmp_path / "broken.json"
    export.write_text('{"_id": {"$oid": "0123456789abcdef01234567"}}\n{not json\n')
    refused = _mailramp(tmp_path, "migrate-legacy", "--from-file", str(export))
    assert refused.returncode == 1
    assert "line 2: not JSON" in plain(refused.stderr)


async def test_documents_are_read_from_a_live_mongodb_of_the_old_app() -> None:
    from mailramp.cli.legacy import legacy_documents
    from mailramp.errors import ValidationError
    from mailramp.legacy.models import LegacyCollection
    from mailramp.legacy.service import LegacyService
    from mailramp.storage.mongo import MongoStore
    from mailramp.storage.sql import SqlStore
    from tests.support.mongo_double import mock_database

    old = MongoStore(mock_database("old_app"))
    await old.import_legacy(
        LegacyCollection.EMAIL_CAMPAIGNS,
        [{"_id": ObjectId(), "user_id": ObjectId(), "subject": f"old {n}"} for n in range(3)],
    )
    opened: list[str] = []

    def open_source(url: str) -> MongoStore:
        opened.append(url)
        return old

    here = SqlStore.from_url("sqlite:///:memory:")  # mailramp's own database: not read
    try:
        documents = await legacy_documents(
            LegacyService(here), "mongodb://old-host/old_app", open_source=open_source
        )
        assert opened == ["mongodb://old-host/old_app"]
        assert sorted(d["subject"] for d in documents) == ["old 0", "old 1", "old 2"]
        with pytest.raises(ValidationError) as refused:
            await legacy_documents(LegacyService(here), "postgresql://x/y")
        assert refused.value.field == "from_mongodb"
    finally:
        await here.close()
