"""The command line as an operator uses it: `mailramp user|mailbox|campaign …` in a
subprocess on a SQLite file, human and --json output, documented exit codes, and a --help
with an example on every command."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main

from mailramp import __version__
from mailramp.cli.main import app
from mailramp.storage.mongo.base import SCHEMA_VERSION
from mailramp.storage.sql.migrate import head_revision
from tests.support.clock import next_monday, system_now
from tests.support.processes import clean_environment, plain, run_mailramp
from tests.support.smtp import SmtpServer


def _all_commands() -> list[tuple[str, Any]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        if hasattr(command, "commands"):  # a group (Typer's own click, or click's)
            if prefix and getattr(command, "invoke_without_command", False):
                found.append((prefix, command))  # a group that is a command itself
            for name, child in command.commands.items():
                walk(f"{prefix} {name}".strip(), child)
        elif not command.hidden:
            found.append((prefix, command))

    walk("", root)
    return found


def test_every_command_has_help_with_an_example() -> None:
    commands = dict(_all_commands())
    wanted = {
        "serve",
        "worker",
        "demo",
        "db upgrade",
        "user create",
        "mailbox add",
        "campaign create",
        "campaign import",
        "campaign launch",
        "campaign pause",
        "campaign resume",
        "campaign cancel",
        "campaign stats",
        "campaign export",
        "keys rotate",
    }
    assert wanted <= set(commands), sorted(wanted - set(commands))
    missing = [name for name, command in commands.items() if "Example" not in (command.help or "")]
    assert missing == [], f"commands without an example in --help: {missing}"


def test_help_prints_what_the_docstrings_say_and_version_answers(tmp_path: Path) -> None:
    create = run_mailramp("campaign", "create", "--help", cwd=tmp_path)
    assert create.returncode == 0
    # Brackets are text, not markup that swallows them.
    assert "spread over [start, start + duration] within" in " ".join(create.stdout.split())
    version = run_mailramp("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout.strip() == (
        f"mailramp {__version__} (schema {head_revision()} on SQL, {SCHEMA_VERSION} on MongoDB)"
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+(\+g[0-9a-f]{9})?", __version__)
    assert version.stdout == run_mailramp("version", cwd=tmp_path).stdout


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    environment = clean_environment(MAILRAMP_ALLOW_PRIVATE_HOSTS="true")

    def mailramp(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
        import subprocess
        import sys

        return subprocess.run(
            [sys.executable, "-m", "mailramp", *args],
            cwd=tmp_path,
            env=environment,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return mailramp


def test_an_operator_sets_up_and_runs_a_campaign_from_the_shell(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    smtp = SmtpServer({"ann@acme.com": "smtp-pass"}).start()
    try:
        made = cli(
            "user", "create", "--name", "Ann Lee", "--login", "ann@acme.com", "--password-stdin",
            stdin="a long enough passphrase\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert made.stdout.startswith("created user ann@acme.com (")
        again = cli(
            "user", "create", "--name", "Ann", "--login", "ANN@acme.com", "--password-stdin",
            "--json", stdin="another passphrase\n",
        )  # fmt: skip
        assert again.returncode == 4  # duplicate login
        assert json.loads(again.stderr)["error"]["field"] == "login_id"

        linked = cli(
            "mailbox", "add", "--user", "ann@acme.com", "--email", "ann@acme.com",
            "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.port), "--smtp-security",
            "plain", "--daily-limit", "200", "--password-stdin", "--json",
            stdin="smtp-pass\n",
        )  # fmt: skip
        assert linked.returncode == 0, linked.stderr
        mailbox = json.loads(linked.stdout)
        assert mailbox["email"] == "ann@acme.com" and mailbox["daily_limit"] == 200
        assert "smtp-pass" not in linked.stdout and "password" not in mailbox

        broken = tmp_path / "broken.csv"
        broken.write_text('email,first_name\nzoe@example.com,"Zoe\nyan@example.com,Yan\n')
        refused = cli(
            "campaign", "create", "--user", "ann@acme.com", "--mailbox", "ann@acme.com",
            "--name", "Half made", "--subject", "Hi", "--message", "Hello", "--duration", "3",
            "--recipients", str(broken),
        )  # fmt: skip
        assert refused.returncode == 1 and "row 2" in plain(refused.stderr), refused.stderr
        listed = json.loads(cli("campaign", "list", "--user", "ann@acme.com", "--json").stdout)
        assert listed == []  # a refused file creates no campaign

        # The CLI reads the system clock: the start is a Monday some weeks from it.
        start = next_monday(system_now(), weeks=4).astimezone(timezone(timedelta(hours=1)))
        people = tmp_path / "people.csv"
        people.write_text(
            'email,first_name,company\nzoe@example.com,Zoe,=HYPERLINK("http://x")\n'
            "not-an-address,X,Y\nyan@example.com,Yan,Acme\n"
        )
        created = cli(
            "campaign", "create", "--user", "ann@acme.com", "--mailbox", "ann@acme.com",
            "--name", "Shell launch", "--subject", "Hi {{first_name}}", "--message",
            "Hello {{first_name}} at {{company}}", "--duration", "3",
            "--start", start.isoformat(timespec="minutes"), "--recipients", str(people), "--json",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        body = json.loads(created.stdout)
        campaign_id = body["campaign"]["campaign_id"]
        assert body["campaign"]["status"] == "scheduled"
        assert body["import"]["accepted"] == 2 and body["import"]["invalid"][0]["row"] == 3

        stats = json.loads(cli("campaign", "stats", campaign_id, "--json").stdout)
        assert stats["recipients"]["pending"] == 2 and stats["metrics"]["total_sent"] == 0

        launched = cli("campaign", "launch", campaign_id)
        assert launched.returncode == 0, launched.stderr
        # It says when the first email goes out, and how the rest spread.
        assert re.fullmatch(
            r"launched Shell launch: now active; 2 emails wait; the first at "
            r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \((now|in \d+ minutes?)\), the last at "
            r"\d{4}-\d\d-\d\d \d\d:\d\d UTC, about ([\d.]+ an? (minute|hour|day)"
            r"|one every [\d.]+ (minute|hour|day)s?)",
            launched.stdout.strip(),
        ), launched.stdout
        assert "now paused" in plain(cli("campaign", "pause", campaign_id).stdout)
        resumed = json.loads(cli("campaign", "resume", campaign_id, "--json").stdout)
        assert resumed["status"] == "active"
        # the window moved to begin now
        assert datetime.fromisoformat(resumed["start_time"]) < start

        exported = cli("campaign", "export", campaign_id)
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        assert sorted(r["recipient_email"] for r in rows) == ["yan@example.com", "zoe@example.com"]
        zoe = next(r for r in rows if r["recipient_email"] == "zoe@example.com")
        assert zoe["company"] == '\'=HYPERLINK("http://x")'  # not a formula in a spreadsheet

        cancelled = cli("campaign", "cancel", campaign_id)
        assert "now cancelled" in plain(cancelled.stdout)
        refused = cli("campaign", "resume", campaign_id)
        assert refused.returncode == 4 and "cannot go from 'cancelled'" in plain(refused.stderr)
        stats = json.loads(cli("campaign", "stats", campaign_id, "--json").stdout)
        assert stats["campaign"]["status"] == "cancelled"
        assert stats["recipients"]["cancelled"] == 2

        listed = cli("campaign", "list", "--user", "ann@acme.com")
        assert campaign_id in listed.stdout and "cancelled" in plain(listed.stdout)
    finally:
        smtp.stop()


def test_exit_codes_name_the_problem(cli) -> None:  # type: ignore[no-untyped-def]
    missing = cli("campaign", "stats", "8f14e45f-ceea-467f-a0e6-1b0e1f6b0e33")
    assert missing.returncode == 3 and "not found" in plain(missing.stderr)
    no_user = cli("mailbox", "list", "--user", "nobody@example.com", "--json")
    assert no_user.returncode == 3
    assert json.loads(no_user.stderr)["error"]["code"] == "not_found"
    usage = cli("campaign", "stats")
    assert usage.returncode == 2 and "Missing argument" in plain(usage.stderr)
    bad_id = cli("campaign", "stats", "not-a-uuid")
    assert bad_id.returncode == 1 and "campaign_id" in plain(bad_id.stderr)
    made = cli(
        "user", "create", "--name", "Bo", "--login", "bo@example.com", "--password-stdin",
        stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert made.returncode == 0
    no_mailbox = cli(
        "campaign", "create", "--user", "bo@example.com", "--mailbox", "bo@example.com",
        "--name", "x", "--subject", "y", "--message", "z", "--duration", "1",
    )  # fmt: skip
    assert no_mailbox.returncode == 3
    assert "mailbox 'bo@example.com' not found" in plain(no_mailbox.stderr)
    bad_start = cli(
        "user", "create", "--name", "", "--login", "x@example.com", "--password-stdin",
        stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert bad_start.returncode == 1 and "user_name" in plain(bad_start.stderr)


def test_the_old_show_name_still_works(tmp_path: Path) -> None:
    shown = run_mailramp("campaign", "show", "8f14e45f-ceea-467f-a0e6-1b0e1f6b0e33", cwd=tmp_path)
    assert shown.returncode == 3


def test_worker_serves_health_and_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.support.postgres import free_port

    port = free_port()
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailramp", "worker", "--health-port", str(port)],
        cwd=tmp_path,
        env=clean_environment(MAILRAMP_LOG_FORMAT="json", MAILRAMP_WORKER_POLL_SECONDS="0.2"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the worker's health port never answered"
                time.sleep(0.1)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'mailramp_queue_depth{state="due"} 0.0' in metrics
        assert "mailramp_claim_latency_seconds_count" in metrics
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        log.close()
    assert code == 0
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)


def test_a_campaign_from_two_mailboxes_from_the_shell(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    made = cli(
        "user", "create", "--name", "Bo", "--login", "bo@acme.com", "--password-stdin",
        stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    ids = []
    for email in ("bo@acme.com", "bo@acme-mail.com"):
        linked = cli(
            "mailbox", "add", "--user", "bo@acme.com", "--email", email,
            "--smtp-host", "127.0.0.1", "--smtp-port", "2525", "--smtp-security", "plain",
            "--daily-limit", "3", "--password-stdin", "--json", stdin="smtp-pass\n",
        )  # fmt: skip
        assert linked.returncode == 0, linked.stderr
        ids.append(json.loads(linked.stdout)["_id"])
    people = tmp_path / "people.csv"
    people.write_text("email\n" + "".join(f"p{n}@example.com\n" for n in range(5)))
    start = next_monday(system_now(), weeks=4).astimezone(timezone(timedelta(hours=1)))
    common = (
        "campaign", "create", "--user", "bo@acme.com", "--name", "Two senders",
        "--subject", "Hi", "--message", "Hello", "--duration", "2",
        "--start", start.isoformat(timespec="minutes"), "--recipients", str(people), "--json",
    )  # fmt: skip
    alone = cli(*common, "--mailbox", "bo@acme.com")
    assert alone.returncode == 1  # 5 people, 3 a day from one mailbox
    assert "or 2 mailboxes" not in alone.stderr and "daily limit of at least 5" in alone.stderr
    created = cli(*common, "--mailbox", "bo@acme.com", "--mailbox", "bo@acme-mail.com")
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["campaign"]["mailbox_ids"] == ids and body["import"]["accepted"] == 5
    unknown = cli(*common, "--mailbox", "bo@acme.com", "--mailbox", "nobody@acme.com")
    assert unknown.returncode == 3 and "not found" in plain(unknown.stderr)


def test_a_relay_without_login_is_linked_with_no_password(cli) -> None:  # type: ignore[no-untyped-def]
    made = cli(
        "user", "create", "--name", "Ann", "--login", "ann@acme.com", "--password-stdin",
        stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    relay = ("mailbox", "add", "--user", "ann@acme.com", "--smtp-host", "10.0.0.25",
             "--smtp-port", "25", "--smtp-security", "plain", "--no-login")  # fmt: skip
    linked = cli(*relay, "--email", "ann@acme.com", "--json")
    assert linked.returncode == 0, linked.stderr  # nothing asked for: stdin is empty
    assert json.loads(linked.stdout)["email"] == "ann@acme.com"
    both = cli(*relay, "--email", "bo@acme.com", "--password", "x")
    assert both.returncode == 2 and "--no-login takes no password" in plain(both.stderr)
    inbox = cli(*relay, "--email", "cy@acme.com", "--imap-host", "10.0.0.26")
    assert inbox.returncode == 1
    assert "password is required to read replies over IMAP" in plain(inbox.stderr)
