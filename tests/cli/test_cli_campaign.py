"""`mailramp campaign import|show|resend-uncertain` and the worker inside `mailramp serve`."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

from standardwebhooks import Webhook

from mailramp.config import Settings
from mailramp.runtime import open_runtime
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, plain, run_mailramp, serving
from tests.support.scenario import make_due_now, smtp_sender
from tests.support.smtp import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver


async def _setup(settings: Settings, smtp_port: int) -> tuple[str, str]:
    runtime = await open_runtime(settings)
    try:
        user, mailbox = await smtp_sender(runtime, email="cli@acme.com", smtp_port=smtp_port)
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="CLI campaign",
            subject="Hi {{first_name|there}}",
            message="Hello",
            duration=4,
            start_time=runtime.clock() - timedelta(minutes=5),
        )
        return user.user_id, campaign.campaign_id
    finally:
        await runtime.close()


async def _make_due(settings: Settings, campaign_id: str) -> None:
    runtime = await open_runtime(settings)
    try:
        await make_due_now(runtime, campaign_id)
    finally:
        await runtime.close()


def test_import_show_and_the_worker_inside_serve(tmp_path: Path) -> None:
    server = SmtpServer(accounts={"cli@acme.com": "pw"}).start()
    try:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
            encryption_key_file=tmp_path / "mailramp.key",
        )
        _, campaign_id = asyncio.run(_setup(settings, server.port))
        csv_file = tmp_path / "people.csv"
        csv_file.write_text(
            "email,first_name\nann@example.com,Ann\nbad-address,X\nben@example.com,Ben\n"
            "ANN@example.com,Dup\ncid@example.com,\n"
        )
        environment = clean_environment(MAILRAMP_ALLOW_PRIVATE_HOSTS="true")
        imported = run_mailramp(
            "campaign", "import", campaign_id, str(csv_file), cwd=tmp_path, env=environment
        )
        assert imported.returncode == 0, imported.stderr
        assert (
            "5 rows: 3 accepted, 1 duplicates, 1 invalid, 0 suppressed; "
            "the campaign now has 3 recipients" in plain(imported.stdout)
        )
        assert "row 3: 'bad-address'" in plain(imported.stdout)
        assert "importing" in plain(imported.stderr)  # the progress bar

        refused = run_mailramp(
            "campaign",
            "import",
            campaign_id,
            str(tmp_path / "nope.csv"),
            cwd=tmp_path,
            env=environment,
        )
        assert refused.returncode == 2 and "does not exist" in plain(refused.stderr)
        (tmp_path / "binary.csv").write_bytes(b"email\nann@example.com\n\xc3\x28@example.com\n")
        binary = run_mailramp(
            "campaign",
            "import",
            campaign_id,
            str(tmp_path / "binary.csv"),
            cwd=tmp_path,
            env=environment,
        )
        assert binary.returncode == 1
        assert "not UTF-8" in plain(binary.stderr) and "row 3" in plain(binary.stderr)

        asyncio.run(_make_due(settings, campaign_id))
        port = free_port()
        with serving(port, cwd=tmp_path, env=environment):
            deadline = time.monotonic() + 30
            while len(server.inbox.messages) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            # The worker completes the campaign on its pass after the last send.
            while time.monotonic() < deadline:
                status = run_mailramp(
                    "campaign", "show", campaign_id, cwd=tmp_path, env=environment
                )
                if "completed" in plain(status.stdout):
                    break
                time.sleep(0.5)
        assert server.inbox.count_by_recipient() == {
            "ann@example.com": 1,
            "ben@example.com": 1,
            "cid@example.com": 1,
        }
        assert server.inbox.to("cid@example.com")[0]["Subject"] == "Hi there"

        shown = run_mailramp("campaign", "show", campaign_id, cwd=tmp_path, env=environment)
        assert shown.returncode == 0, shown.stderr
        assert "CLI campaign" in plain(shown.stdout) and "completed" in plain(shown.stdout)
        assert "recipients: sent 3" in plain(shown.stdout)
        assert "sent 3, delivered 3, bounced 0 (0.0%)" in plain(shown.stdout)
        resend = run_mailramp(
            "campaign", "resend-uncertain", campaign_id, cwd=tmp_path, env=environment
        )
        assert "queued 0 uncertain record(s)" in plain(resend.stdout)
        unknown = run_mailramp(
            "campaign",
            "show",
            "8f14e45f-ceea-467f-a0e6-1b0e1f6b0e33",
            cwd=tmp_path,
            env=environment,
        )
        assert unknown.returncode == 3  # not found
        assert "not found" in plain(unknown.stderr)
    finally:
        server.stop()


def test_a_person_is_stopped_or_marked_replied_from_the_command_line(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_key_file=tmp_path / "mailramp.key",
    )
    _, campaign_id = asyncio.run(_setup(settings, free_port()))
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email\nann@example.com\nben@example.com\n")
    environment = clean_environment()
    imported = run_mailramp(
        "campaign", "import", campaign_id, str(csv_file), cwd=tmp_path, env=environment
    )
    assert imported.returncode == 0, imported.stderr

    stopped = run_mailramp(
        "campaign", "stop-recipient", campaign_id, "Ben@Example.com", cwd=tmp_path, env=environment
    )
    assert stopped.returncode == 0, stopped.stderr
    assert plain(stopped.stdout) == "ben@example.com stopped (first email: stopped)"
    as_json = run_mailramp(
        "campaign",
        "stop-recipient",
        campaign_id,
        "ben@example.com",
        "--json",
        cwd=tmp_path,
        env=environment,
    )
    assert '"status": "stopped"' in as_json.stdout

    not_yet = run_mailramp(
        "campaign", "mark-replied", campaign_id, "ann@example.com", cwd=tmp_path, env=environment
    )
    assert not_yet.returncode == 4  # a conflict: nothing was sent to reply to
    assert "ann@example.com has not been emailed (pending)" in plain(not_yet.stderr)
    unknown = run_mailramp(
        "campaign", "mark-replied", campaign_id, "zed@example.com", cwd=tmp_path, env=environment
    )
    assert unknown.returncode == 3 and "not found" in plain(unknown.stderr)
    shown = run_mailramp("campaign", "show", campaign_id, cwd=tmp_path, env=environment)
    assert "stopped 1" in plain(shown.stdout) and "pending 1" in plain(shown.stdout)


def test_lead_statuses_and_labels_from_the_command_line(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_key_file=tmp_path / "mailramp.key",
    )
    user_id, campaign_id = asyncio.run(_setup(settings, free_port()))
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email\nann@example.com\nben@example.com\n")
    environment = clean_environment()

    def mailramp(*arguments: str) -> tuple[int, str, str]:
        done = run_mailramp(*arguments, cwd=tmp_path, env=environment)
        return done.returncode, plain(done.stdout).strip(), plain(done.stderr).strip()

    assert mailramp("campaign", "import", campaign_id, str(csv_file))[0] == 0
    assert mailramp("lead", "add-label", "Needs pricing", "--user", user_id) == (
        0,
        "label added: Needs pricing",
        "",
    )
    code, _, error = mailramp("lead", "add-label", "needs pricing", "--user", user_id)
    assert code == 4 and "a label with name 'needs pricing' already exists" in error
    code, out, _ = mailramp("lead", "statuses", "--user", user_id, "--json")
    assert code == 0 and json.loads(out)[1:2] + json.loads(out)[-2:] == [
        "meeting_booked",
        "do_not_contact",
        "Needs pricing",
    ]

    assert mailramp("lead", "set", campaign_id, "Ann@Example.com", "meeting booked") == (
        0,
        "ann@example.com: Meeting booked",
        "",
    )
    assert mailramp("lead", "set", campaign_id, "ben@example.com", "do not contact")[0] == 0
    code, _, error = mailramp("lead", "set", campaign_id, "ben@example.com", "maybe")
    assert code == 1 and "unknown lead status 'maybe'" in error
    code, out, _ = mailramp("lead", "counts", campaign_id)
    assert (code, out) == (0, "1 Do not contact 1 Meeting booked")
    code, out, _ = mailramp("lead", "counts", campaign_id, "--json")
    assert json.loads(out) == {"do_not_contact": 1, "meeting_booked": 1}
    # "Do not contact" stopped Ben and suppressed his address.
    shown = mailramp("campaign", "show", campaign_id)[1]
    assert "stopped 1" in shown and "pending 1" in shown
    code, _, error = mailramp("lead", "remove-label", "Nope", "--user", user_id)
    assert code == 3 and "not found" in error
    assert mailramp("lead", "remove-label", "needs PRICING", "--user", user_id)[0] == 0


def test_webhooks_from_the_command_line(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mailramp.db'}",
        encryption_key_file=tmp_path / "mailramp.key",
    )
    user_id, _ = asyncio.run(_setup(settings, free_port()))
    receiver = WebhookReceiver().start()
    environment = clean_environment(MAILRAMP_ALLOW_PRIVATE_HOSTS="true")

    def mailramp(*arguments: str) -> tuple[int, str, str]:
        done = run_mailramp(*arguments, cwd=tmp_path, env=environment)
        return done.returncode, done.stdout, plain(done.stderr)

    try:
        code, out, _ = mailramp(
            "webhook", "add", receiver.url, "--user", user_id, "--kind", "reply", "--json"
        )
        added = json.loads(out)
        assert code == 0 and added["kinds"] == ["reply"] and added["secret"].startswith("whsec_")
        assert "enc1:" not in out  # the stored (encrypted) secret is never printed
        code, out, _ = mailramp("webhook", "list", "--user", user_id)
        assert code == 0 and f"{added['id']} enabled {receiver.url} reply" in plain(out)
        code, out, _ = mailramp("webhook", "test", added["id"], "--user", user_id)
        assert code == 0 and plain(out).startswith("HTTP 200 in ")
        (arrived,) = receiver.take()
        body = Webhook(added["secret"]).verify(arrived.body, arrived.headers)
        assert body["type"] == "webhook.test"
        receiver.stop()
        code, out, _ = mailramp("webhook", "test", added["id"], "--user", user_id)
        assert code == 1 and "no answer" in plain(out) and "ConnectError" in plain(out)
        code, _, error = mailramp("webhook", "add", "ftp://x.example/", "--user", user_id)
        assert code == 1 and "is not an http:// or https:// URL" in error
    finally:
        receiver.stop()
