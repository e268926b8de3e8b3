"""Bad input (docs/reliability.md, item 11): broken CSV files, oversized requests and
malformed JSON against `mailramp serve` on loopback. Every one gets a 4xx whose message names
the problem (row, field, value), never a 5xx; a refused import leaves the campaign's
recipients exactly as they were; a 200,000-row import holds memory in proportion to its
records, not to its file; the dashboard's new-campaign form creates nothing when its file
is refused and keeps what was typed.

Figures are printed (run with `-s`): the corpus table and peak memory of the server for
20,000 and 200,000 rows.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mailramp.web.limits import SMALL_BODY_BYTES, SMALL_ROUTES
from tests.support.bad_inputs import (
    BadFile,
    bad_campaign_bodies,
    bad_files,
    big_csv,
    big_csv_bad_rows,
    recipient_row,
)
from tests.support.clock import next_monday, system_now
from tests.support.memory import PeakMemory
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.raw_http import raw_post
from tests.support.smtp import SmtpServer
from tests.web.conftest import page, screenshot  # noqa: F401  (the browser page fixture)

pytestmark = pytest.mark.reliability

MAX_REQUEST_BYTES = 256 * 1024
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
SNAPSHOT_PAGE = 1000


@dataclass
class Site:
    base: str
    port: int
    directory: Path
    pid: int
    client: httpx.Client

    def mailbox(self, email: str, **fields: Any) -> str:
        answer = self.client.post(
            "/api/v1/mailboxes",
            json={
                "email": email,
                "provider": "smtp",
                "smtp_host": "127.0.0.1",
                "password": "smtp-pass",
                "daily_limit": 10_000,
            }
            | fields,
        )
        assert answer.status_code == 201, answer.text
        mailbox_id: str = answer.json()["_id"]
        return mailbox_id

    def campaign(self, mailbox_id: str, name: str, **fields: Any) -> str:
        answer = self.client.post(
            "/api/v1/campaigns",
            json={
                "mailbox_id": mailbox_id,
                "campaign_name": name,
                "subject": "Hello {{first_name|there}}",
                "message": "Hi {{first_name|there}} at {{company|your company}}",
                "duration": 24 * 60,
                "start_time": next_monday(system_now(), weeks=4).isoformat(),
            }
            | fields,
        )
        assert answer.status_code == 201, answer.text
        campaign_id: str = answer.json()["campaign_id"]
        return campaign_id

    def upload(self, campaign_id: str, data: bytes, name: str = "people.csv") -> httpx.Response:
        return self.client.post(
            f"/api/v1/campaigns/{campaign_id}/recipients",
            files={"file": (name, data, "text/csv")},
        )

    def snapshot(self, campaign_id: str) -> tuple[int, list[tuple[Any, ...]]]:
        """The campaign's declared total and every record as the API shows it."""
        total = self.client.get(f"/api/v1/campaigns/{campaign_id}").json()["total_recipients"]
        records: list[tuple[Any, ...]] = []
        offset = 0
        while True:
            page_ = self.client.get(
                f"/api/v1/campaigns/{campaign_id}/recipients",
                params={"offset": offset, "limit": SNAPSHOT_PAGE},
            ).json()
            records += [
                (
                    item["_id"],
                    item["recipient_email"],
                    json.dumps(item["merge_variables"], sort_keys=True),
                    item["status"],
                    item["scheduled_at"],
                )
                for item in page_["items"]
            ]
            offset += len(page_["items"])
            if offset >= page_["total"] or not page_["items"]:
                return total, records

    def count(self, campaign_id: str) -> int:
        listed = self.client.get(
            f"/api/v1/campaigns/{campaign_id}/recipients", params={"limit": 1}
        ).json()
        total: int = listed["total"]
        return total


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    directory = tmp_path_factory.mktemp("bad-input")
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
        MAILRAMP_PUBLIC_BASE_URL=base,
        MAILRAMP_MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES),
        MAILRAMP_MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES),
    )
    with (
        serving(port, cwd=directory, env=environment) as process,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        signed_up = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Bad Input", "login_id": "bad", "password": "bad input passphrase"},
        )
        csrf = signed_up.json()["csrf_token"]
        key = client.post(
            "/api/v1/api-keys", json={"name": "battery"}, headers={"X-CSRF-Token": csrf}
        ).json()["key"]
        client.cookies.clear()
        client.headers["Authorization"] = f"Bearer {key}"
        yield Site(base, port, directory, process.pid, client)
    log = (directory / "serve.log").read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]
    assert not re.search(r'HTTP/1\.1" 5\d\d', log), "a 5xx was served"


# -- broken CSV files ---------------------------------------------------------------------


def test_every_broken_csv_is_refused_naming_its_problem_and_imports_nothing(site: Site) -> None:
    mailbox_id = site.mailbox("corpus@acme.com")
    campaign_id = site.campaign(mailbox_id, "Corpus")
    seeded = site.upload(campaign_id, ("email,first_name,company\n" + recipient_row(1)).encode())
    assert seeded.status_code == 200 and seeded.json()["accepted"] == 1
    before = site.snapshot(campaign_id)
    corpus = bad_files()
    print(f"\n{len(corpus)} broken files, each refused as a whole:")
    for case in corpus:
        answer = site.upload(campaign_id, case.data)
        assert answer.status_code == 422, (case.name, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_file" and error["field"] == "file", (case.name, error)
        _names_the_problem(case, error["message"])
        assert site.snapshot(campaign_id) == before, f"{case.name} changed the recipients"
        print(f"  {case.name:<24} {len(case.data):>9,} B  {error['message']}")


def _names_the_problem(case: BadFile, message: str) -> None:
    for fragment in case.expect:
        assert fragment.lower() in message.lower(), (case.name, fragment, message)
    if case.row is not None:
        assert f"row {case.row}" in message, (case.name, message)


def test_rows_with_a_bad_address_are_listed_and_the_rest_imported(site: Site) -> None:
    mailbox_id = site.mailbox("partial@acme.com")
    campaign_id = site.campaign(mailbox_id, "Trailing commas and bad rows")
    data = (
        b"email,first_name,company,,\n"  # a spreadsheet's empty trailing columns
        b"ann@example.com,Ann,Acme,,\n"
        b"ben@example.com,Ben,Acme\n"  # shorter than the header: padding left out
        b"short@example.com,Shorty\n"  # a named column missing
        b"extra@example.com,Extra,Acme,,,surplus\n"  # a value past the header's end
        b"bad-address,Bad,Acme\n"
    )
    report = site.upload(campaign_id, data).json()
    assert report["accepted"] == 2 and report["invalid_count"] == 3
    assert [(row["row"], row["value"]) for row in report["invalid"]] == [
        (4, "short@example.com"),
        (5, "extra@example.com"),
        (6, "bad-address"),
    ]
    assert "2 fields, header has 5" in report["invalid"][0]["reason"]
    assert "@-sign" in report["invalid"][2]["reason"]


# -- 200,000 rows -------------------------------------------------------------------------


@pytest.mark.long
def test_200k_rows_import_in_memory_bounded_by_the_records(site: Site) -> None:
    figures: list[tuple[str, int, int, float, int]] = []

    def imported(name: str, data: bytes, rows: int) -> tuple[dict[str, Any], int]:
        mailbox_id = site.mailbox(f"{name}@acme.com")
        campaign_id = site.campaign(mailbox_id, name)
        started = time.perf_counter()
        with PeakMemory(site.pid) as memory:
            answer = site.upload(campaign_id, data)
        elapsed = time.perf_counter() - started
        assert answer.status_code == 200, answer.text
        figures.append((name, rows, len(data), elapsed, memory.growth_kib))
        report: dict[str, Any] = answer.json()
        return report, site.count(campaign_id)

    # A first import sizes the server's caches and pools; the figures start after it.
    warm_up = site.campaign(site.mailbox("warm-up@acme.com"), "Warm-up")
    assert site.upload(warm_up, big_csv(2_000)).json()["accepted"] == 2_000
    small, small_count = imported("rows-20k", big_csv(20_000), 20_000)
    assert small["accepted"] == small_count == small["total_recipients"] == 20_000
    assert small["rows"] == 20_000 and small["invalid_count"] == 0

    # 200,000 rows with errors spread through the file: every 1,000th address is bad; each
    # is listed, and the rest are stored.
    large, large_count = imported("rows-200k", big_csv(200_000, bad_every=1000), 200_000)
    assert large["rows"] == 200_000 and large["invalid_count"] == 200
    assert large["accepted"] == large_count == large["total_recipients"] == 199_800
    assert [row["row"] for row in large["invalid"]] == big_csv_bad_rows(200_000, 1000)
    assert all(row["value"].startswith("not-an-address-") for row in large["invalid"])

    print("\nimport        rows   file MiB  seconds  server peak +MiB  bytes/row")
    for name, rows, size, elapsed, growth in figures:
        print(
            f"{name:<12} {rows:>7,} {size / 2**20:>9.1f} {elapsed:>8.1f} "
            f"{growth / 1024:>17.1f} {growth * 1024 / rows:>10.0f}"
        )
    small_growth, large_growth = figures[0][4], figures[1][4]
    ratio = large_growth / max(small_growth, 1)
    file_ratio = figures[1][2] / figures[0][2]
    print(f"peak growth 200k / 20k = {ratio:.1f} (rows x10, file x{file_ratio:.1f})")
    # What an import keeps per record (its address, to find duplicates; its id and send
    # time, to plan) is about 250 bytes; the file is streamed from a temporary file. Holding
    # the file's rows as Python objects as well would pass 500 bytes a row.
    assert large_growth * 1024 < 400 * 200_000, figures


def test_a_120k_file_refused_at_row_100001_leaves_the_campaign_as_it_was(site: Site) -> None:
    mailbox_id = site.mailbox("late@acme.com")
    campaign_id = site.campaign(mailbox_id, "Refused halfway")
    assert site.upload(campaign_id, big_csv(3)).json()["accepted"] == 3
    before = site.snapshot(campaign_id)
    lines = big_csv(120_000).decode().splitlines(keepends=True)
    lines[100_000] = "nul@example.com,A\x00B,Acme\n"  # row 100,001: 100 batches were stored
    answer = site.upload(campaign_id, "".join(lines).encode())
    assert answer.status_code == 422
    assert "NUL character at row 100001" in answer.json()["error"]["message"]
    assert site.snapshot(campaign_id) == before


# -- oversized requests -------------------------------------------------------------------


def _megabytes(count: int, filler: bytes = b"x") -> Iterator[bytes]:
    block = filler * (1024 * 1024)
    for _ in range(count):
        yield block


def test_bodies_over_the_configured_limits_are_refused_unread(site: Site) -> None:
    mailbox_id = site.mailbox("oversize@acme.com")
    campaign_id = site.campaign(mailbox_id, "Oversize")
    assert site.upload(campaign_id, big_csv(2)).json()["accepted"] == 2
    before = site.snapshot(campaign_id)
    campaigns_before = site.client.get("/api/v1/campaigns").json()["total"]
    auth = {"Authorization": site.client.headers["Authorization"]}
    json_headers = auth | {"Content-Type": "application/json"}
    boundary = "battery-boundary"
    upload_headers = auth | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    upload_path = f"/api/v1/campaigns/{campaign_id}/recipients"

    def multipart(megabytes: int) -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="huge.csv"\r\nContent-Type: text/csv\r\n\r\nemail,first_name\r\n'
        ).encode()
        for number, block in enumerate(_megabytes(megabytes, b"a")):
            yield f"p{number}@example.com,".encode() + block[:-1] + b"\n"

    cases: list[tuple[str, str, dict[str, str], Callable[[], Iterable[bytes]], bool, str]] = [
        # (name, path, headers, body, chunked, the setting named)
        (
            "JSON, Content-Length 10 GB",
            "/api/v1/campaigns",
            json_headers | {"Content-Length": str(10 * 2**30)},
            lambda: _megabytes(4),
            False,
            "MAILRAMP_MAX_REQUEST_BYTES",
        ),
        (
            "JSON, chunked 8 MiB",
            "/api/v1/campaigns",
            json_headers,
            lambda: _megabytes(8, b" "),
            True,
            "MAILRAMP_MAX_REQUEST_BYTES",
        ),
        (
            "CSV upload, Content-Length 1 GB",
            upload_path,
            upload_headers | {"Content-Length": str(2**30)},
            lambda: multipart(4),
            False,
            "MAILRAMP_MAX_UPLOAD_BYTES",
        ),
        (
            "CSV upload, chunked 64 MiB",
            upload_path,
            upload_headers,
            lambda: multipart(64),
            True,
            "MAILRAMP_MAX_UPLOAD_BYTES",
        ),
    ]
    print("\noversized request                 status  sent MiB  server peak +MiB")
    for name, path, headers, body, chunked, setting in cases:
        with PeakMemory(site.pid) as memory:
            status, answer, sent = raw_post(site.port, path, headers, body(), chunked=chunked)
        assert status == 413, (name, status, answer)
        assert answer["error"]["code"] == "too_large", answer
        message = answer["error"]["message"]
        limit = MAX_UPLOAD_BYTES if "UPLOAD" in setting else MAX_REQUEST_BYTES
        assert setting in message and f"{limit:,} bytes" in message, message
        # The server never held the body: its memory grew by less than the limit itself.
        assert memory.growth_kib * 1024 < limit + 8 * 2**20, (name, memory.growth_kib)
        print(f"  {name:<32} {status}  {sent / 2**20:>8.1f}  {memory.growth_kib / 1024:>16.1f}")
    assert site.snapshot(campaign_id) == before
    assert site.client.get("/api/v1/campaigns").json()["total"] == campaigns_before
    assert site.client.get("/healthz").status_code == 200


# -- malformed JSON -----------------------------------------------------------------------


def test_malformed_json_gets_a_4xx_naming_the_problem(site: Site) -> None:
    mailbox_id = site.mailbox("json@acme.com")
    campaigns_before = site.client.get("/api/v1/campaigns").json()["total"]
    headers = {"Content-Type": "application/json"}
    cases = bad_campaign_bodies(mailbox_id, start=next_monday(system_now()))
    print(f"\n{len(cases)} malformed bodies on POST /api/v1/campaigns:")
    for case in cases:
        answer = site.client.post("/api/v1/campaigns", content=case.body, headers=headers)
        assert answer.status_code == case.status, (case.name, answer.status_code, answer.text)
        error = answer.json()["error"]
        for fragment in case.expect:
            assert fragment.lower() in error["message"].lower(), (case.name, error)
        if case.field is not None:
            assert error.get("field") == case.field, (case.name, error)
        print(f"  {case.name:<22} {answer.status_code}  {error['message'][:110]}")
    assert site.client.get("/api/v1/campaigns").json()["total"] == campaigns_before

    # The same four breakages on every endpoint that takes a JSON body.
    campaign_id = site.campaign(mailbox_id, "Target")
    key_id = site.client.get("/api/v1/api-keys").json()[0]["_id"]
    ids = {"campaign_id": campaign_id, "mailbox_id": mailbox_id, "key_id": key_id}
    schema = site.client.get("/openapi.json").json()
    generic = [
        (b'{"name": "trunc', 422, "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, 400, "nested too deeply"),
        (b'{"limit": ' + b"7" * 5000 + b"}", 400, "more than 4,300 digits"),
        (b'"just a string"', 422, "body"),
    ]
    swept = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            url = path.format(**{name: ids.get(name, "x") for name in _parameters(path)})
            for body, status, fragment in generic:
                if len(body) > SMALL_BODY_BYTES and SMALL_ROUTES.fullmatch(url):
                    # Sign-in and webhook routes take a few fields: refused unread.
                    status, fragment = 413, f"larger than {SMALL_BODY_BYTES:,} bytes"
                answer = site.client.request(method.upper(), url, content=body, headers=headers)
                assert answer.status_code == status, (method, path, body[:30], answer.text)
                assert fragment.lower() in answer.json()["error"]["message"].lower(), (
                    method,
                    path,
                    answer.text,
                )
                swept += 1
    print(f"  {swept} requests: 4 broken bodies on each JSON endpoint, all 4xx")
    assert swept >= 4 * 8


def _parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


# -- the dashboard's new-campaign form ----------------------------------------------------


def test_a_refused_file_on_the_new_campaign_form_creates_nothing_and_keeps_the_form(
    site: Site,
    page: Any,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    smtp = SmtpServer({"form@acme.com": "smtp-pass"}).start()
    try:
        page.goto(site.base + "/signup")
        page.fill("#user_name", "Form User")
        page.fill("#login_id", "form@example.com")
        page.fill("#password", "a long enough passphrase")
        page.click("button[type=submit]")
        page.wait_for_url("**/mailboxes")
        page.fill("#email", "form@acme.com")
        page.fill("#smtp_host", "127.0.0.1")
        page.fill("#smtp_port", str(smtp.port))
        page.select_option("#smtp_security", "plain")
        page.fill("#password", "smtp-pass")
        page.fill("#daily_limit", "10")
        page.click("text=Link mailbox")
        page.wait_for_selector("tr[data-mailbox='form@acme.com']")

        start = datetime.now(ZoneInfo("America/New_York")) + timedelta(days=1)
        typed = {
            "#campaign_name": "Autumn outreach",
            "#subject": "Hello {{first_name}} from {{company}}",
            "#message": "Dear {{first_name}},\n\nA note for {{company}}.\n",
            "#start_time": start.strftime("%Y-%m-%dT%H:%M"),
            "#duration": "1",
        }

        def submit(name: str, text: str | bytes) -> None:
            page.goto(site.base + "/campaigns/new")
            for selector, value in typed.items():
                page.fill(selector, value)
            page.select_option("#message_format", "html")
            file = tmp_path / name
            file.write_bytes(text if isinstance(text, bytes) else text.encode())
            page.set_input_files("#recipients", str(file))
            page.click("text=Create campaign")

        def kept_and_nothing_created() -> None:
            for selector, value in typed.items():
                assert page.input_value(selector) == value, selector
            assert page.input_value("#message_format") == "html"
            assert "Nothing was created" in page.inner_text("main")
            campaigns = page.request.get(site.base + "/api/v1/campaigns").json()
            assert campaigns["total"] == 0, campaigns

        # A Latin-1 file: the error names the row and the byte, next to the file input.
        submit(
            "latin1.csv", "email,first_name,company\nzoe@example.com,Zoë,Acme\n".encode("latin-1")
        )
        file_error = page.inner_text("#file-error")
        assert "not UTF-8" in file_error and "row 2" in file_error and "0xeb" in file_error
        kept_and_nothing_created()
        screenshot(page, "reliability-new-campaign-refused-file")

        # A column the message needs is missing: said next to the message.
        submit("no-company.csv", "email,first_name\nann@example.com,Ann\n")
        assert "{{company}}" in page.inner_text("#message-error")
        kept_and_nothing_created()

        # More recipients than one hour at 10 a day can send: said at the file.
        rows = "".join(f"p{n}@example.com,P{n},Acme\n" for n in range(25))
        submit("too-many.csv", "email,first_name,company\n" + rows)
        assert "of 25 recipients fit" in page.inner_text("#file-error")
        kept_and_nothing_created()

        # An unclosed quote would have swallowed rows 3-5 silently before.
        submit(
            "quote.csv",
            'email,first_name,company\nann@example.com,"Ann,Acme\n'
            "ben@example.com,Ben,Acme\ncid@example.com,Cid,Acme\n",
        )
        assert "starts in row 2 is never closed" in page.inner_text("#file-error")
        kept_and_nothing_created()

        # The corrected file: one campaign, with its recipients.
        submit("good.csv", "email,first_name,company\nann@example.com,Ann,Acme\n")
        page.wait_for_selector("p.notice")
        assert "1 accepted" in page.inner_text("p.notice")
        assert "Autumn outreach" in page.inner_text("h1")
        campaigns = page.request.get(site.base + "/api/v1/campaigns").json()
        assert campaigns["total"] == 1 and campaigns["items"][0]["total_recipients"] == 1
        assert page.problems == []
    finally:
        smtp.stop()
