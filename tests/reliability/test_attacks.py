"""The second attack review (issue 26), each attack performed as it was found, against
`mailramp serve` on loopback with real HTTP and real argon2, and shown to fail now.

| row | attack                                                   | test |
|-----|----------------------------------------------------------|------|
| 1   | sign-in / sign-up posted from another site's page        | test_login_csrf_… |
| 2   | 100 parallel guesses at one account (SQLite, PostgreSQL) | test_parallel_guesses_… |
| 3   | 60 sign-ins for unknown users stall every request        | test_sign_ins_in_flight_… |
| 4   | 16 MB bodies claiming multipart to any route             | test_big_bodies_… |
| 5   | Clerk's user.created webhook while sign-up is closed     | test_closed_sign_up_… |
| 6   | a 100,000-row import while another user signs in         | test_a_100k_row_import_… |
| 7   | timing and answers of locked, unknown and wrong           | test_locked_unknown_… |
| 8   | a captured webhook delivery replayed                     | test_a_replayed_webhook_… |
| 9   | API keys outliving a password change; keys minting keys  | test_api_keys_… |
| 10  | dates at the ends of the calendar                        | test_dates_out_of_range_… |
| +   | guesses spread over accounts from one address            | test_one_address_… |
"""

from __future__ import annotations

import asyncio
import http.server
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from mailramp.storage.sql import SqlStore, tables
from tests.conftest import PostgresTarget, new_postgres_database
from tests.support.bad_inputs import big_csv
from tests.support.clerk_webhooks import WEBHOOK_SECRET, signed_delivery, user_event
from tests.support.clock import next_monday, system_now
from tests.support.jwks import RsaKey
from tests.support.loops import run_blocking
from tests.support.memory import PeakMemory
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, run_mailramp, serving
from tests.support.raw_http import raw_post

pytestmark = pytest.mark.reliability

PASSWORD = "the attack review passphrase"
MB = 1024 * 1024


@dataclass
class Site:
    base: str
    directory: Path
    pid: int
    database_url: str

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, **({"timeout": 60} | options))

    def user(self, login: str) -> dict[str, Any]:
        """Sign up `login` (from its own address, so no test spends another's limit)."""
        with self.client() as client:
            answer = client.post(
                "/api/v1/auth/signup",
                json={"user_name": login.title(), "login_id": login, "password": PASSWORD},
                headers={"X-Forwarded-For": _address(hash(login) % 250)},
            )
            assert answer.status_code == 201, answer.text
            signed_up: dict[str, Any] = answer.json()
            return signed_up

    def _sql(self, statement: Any) -> list[Any]:
        """Run one statement on the site's database, beside the server."""

        async def run() -> list[Any]:
            store = SqlStore.from_url(self.database_url)
            try:
                async with store.engine.begin() as connection:
                    result = await connection.execute(statement)
                    return list(result.all()) if result.returns_rows else []
            finally:
                await store.close()

        return run_blocking(run())

    def row(self, login: str) -> tuple[int, datetime | None]:
        """The account's stored (failed_logins, last_failed_login_at)."""
        users = tables.users
        found = self._sql(
            select(users.c.failed_logins, users.c.last_failed_login_at).where(
                users.c.login_id == login
            )
        )
        assert found, login
        return int(found[0][0]), found[0][1]

    def age_last_attempt(self, login: str, seconds: float) -> None:
        """Arrangement standing for time passing: the last attempt `seconds` earlier."""
        _, last = self.row(login)
        assert last is not None
        users = tables.users
        self._sql(
            update(users)
            .where(users.c.login_id == login)
            .values(last_failed_login_at=last - timedelta(seconds=seconds))
        )

    def reset_failures(self, login: str) -> None:
        users = tables.users
        self._sql(update(users).where(users.c.login_id == login).values(failed_logins=0))


def _address(n: int, block: int = 0) -> str:
    return f"198.51.{100 + block}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def clerk_key() -> RsaKey:
    return RsaKey("ins_attacks")


def _site(directory: Path, database_url: str | None = None, **settings: str) -> Iterator[Site]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = database_url or f"sqlite:///{directory / 'mailramp.db'}"
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
        MAILRAMP_PUBLIC_BASE_URL=base,
        MAILRAMP_DATABASE_URL=database_url,
        **settings,
    )
    with serving(port, cwd=directory, env=environment) as process:
        yield Site(base, directory, process.pid, database_url)
    log = (directory / "serve.log").read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, clerk_key: RsaKey) -> Iterator[Site]:
    """Sign-up open; the test client is the trusted proxy (127.0.0.1), so X-Forwarded-For
    names the client address, as behind nginx."""
    yield from _site(
        tmp_path_factory.mktemp("attacks"),
        CLERK_JWT_KEY=clerk_key.public_pem(),
        CLERK_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )


@pytest.fixture(scope="module")
def postgres_site(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresTarget
) -> Iterator[Site]:
    """Sign-up open, on PostgreSQL: where attempts race for real, in parallel transactions."""
    database_url = run_blocking(new_postgres_database(postgres))
    yield from _site(tmp_path_factory.mktemp("attacks-postgres"), database_url)


@pytest.fixture(scope="module")
def closed_site(tmp_path_factory: pytest.TempPathFactory, clerk_key: RsaKey) -> Iterator[Site]:
    """Sign-up closed, Clerk configured; only 192.0.2.1 is a trusted proxy, so this client's
    X-Forwarded-For is ignored."""
    yield from _site(
        tmp_path_factory.mktemp("attacks-closed"),
        CLERK_JWT_KEY=clerk_key.public_pem(),
        CLERK_WEBHOOK_SECRET=WEBHOOK_SECRET,
        MAILRAMP_SIGNUP_OPEN="false",
        MAILRAMP_TRUSTED_PROXIES="192.0.2.1",
    )


# -- row 1: login CSRF --------------------------------------------------------------------


class _EvilPage(http.server.BaseHTTPRequestHandler):
    """A page on another origin that posts the attacker's login to mailramp on load."""

    target = ""

    def do_GET(self) -> None:
        page = (
            f'<form id="f" method="post" action="{self.target}/signin">'
            '<input name="login_id" value="attacker"><input name="password" '
            f'value="{PASSWORD}"></form><script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *_: Any) -> None:
        pass


def test_login_csrf_from_another_site_is_refused_and_signs_no_one_in(
    site: Site, browser: Any
) -> None:
    site.user("attacker")
    form = {"login_id": "attacker", "password": PASSWORD}
    with site.client() as client:
        for path, body in (
            ("/signin", {"data": form}),
            ("/signup", {"data": form | {"user_name": "A"}}),
            ("/api/v1/auth/login", {"json": form}),
            ("/api/v1/auth/signup", {"json": form | {"user_name": "A"}}),
        ):
            for headers in (
                {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                {"Origin": "https://evil.example"},  # a browser without Fetch Metadata
                {"Origin": "null"},  # a sandboxed frame
                {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain
            ):
                refused = client.post(path, headers=headers, **body)  # type: ignore[arg-type]
                assert refused.status_code == 403, (path, headers, refused.text)
                assert "cross-origin request refused" in refused.json()["error"]["message"]
                assert "set-cookie" not in refused.headers, (path, headers)
        own_page = client.post(
            "/signin", data=form, headers={"Origin": site.base, "Sec-Fetch-Site": "same-origin"}
        )
        assert own_page.status_code == 303 and "mailramp_session=" in own_page.headers["set-cookie"]

    # The attack as a victim's browser lives it: a page on another origin submits the form.
    _EvilPage.target = site.base
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        tab = context.new_page()
        with tab.expect_response(lambda r: r.url.endswith("/signin")) as posted:
            tab.goto(f"http://localhost:{evil.server_address[1]}/")
        assert posted.value.status == 403
        assert not [c for c in context.cookies() if c["name"] == "mailramp_session"]
        tab.goto(site.base + "/campaigns")
        assert tab.url.endswith("/signin")  # still signed out
    finally:
        context.close()
        evil.shutdown()
        evil.server_close()


# -- row 2: racing the throttle -------------------------------------------------------------


async def _sign_ins(site: Site, attempts: list[tuple[str, str, str]]) -> list[httpx.Response]:
    """(login, password, client address) sign-ins, all in flight at once."""
    limits = httpx.Limits(max_connections=len(attempts))
    async with httpx.AsyncClient(base_url=site.base, timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/login",
                    json={"login_id": login, "password": password},
                    headers={"X-Forwarded-For": address},
                )
                for login, password, address in attempts
            )
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_parallel_guesses_check_the_password_at_most_five_times(
    backend: str, request: pytest.FixtureRequest
) -> None:
    site: Site = request.getfixturevalue("site" if backend == "sqlite" else "postgres_site")
    site.user("target")
    guesses = [("target", f"guess {n}", _address(n, block=1)) for n in range(100)]
    answers = run_blocking(_sign_ins(site, guesses))
    refused = [a for a in answers if a.status_code == 401]
    busy = [a for a in answers if a.status_code == 503]
    assert len(refused) + len(busy) == 100
    assert {a.json()["error"]["message"] for a in refused} == {"invalid login or password"}
    # Beyond what the hashing threads have queued, a flood is told to come back (quickly,
    # without any work).
    assert all(a.json()["error"]["code"] == "busy" and a.headers["Retry-After"] for a in busy)
    # Each attempt checked against the account's hash was reserved first: the count is the
    # number of checks.
    assert site.row("target")[0] == 5
    print(
        f"\n100 parallel guesses ({backend}): {len(refused)} refused, {len(busy)} told to retry, "
        f"{site.row('target')[0]} checked against the account's hash"
    )

    site.age_last_attempt("target", 31)  # the 30-second lock is over
    again = [("target", f"late guess {n}", _address(n, block=2)) for n in range(50)]
    assert {a.status_code for a in run_blocking(_sign_ins(site, again))} <= {401, 503}
    assert site.row("target")[0] == 6  # one of the 50 got the one attempt
    site.age_last_attempt("target", 61)
    right = run_blocking(_sign_ins(site, [("target", PASSWORD, _address(7, block=3))]))
    assert right[0].status_code == 200
    assert site.row("target") == (0, None)


def test_one_address_is_held_to_30_attempts_across_accounts(site: Site, closed_site: Site) -> None:
    spread = [(f"nobody{n}", PASSWORD, "203.0.113.50") for n in range(31)]
    answers = run_blocking(_sign_ins(site, spread))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 30 + [429]
    held = next(a for a in answers if a.status_code == 429)
    assert held.json()["error"]["code"] == "too_many_attempts"
    assert int(held.headers["Retry-After"]) == 600
    other = run_blocking(_sign_ins(site, [("nobody", PASSWORD, "203.0.113.51")]))
    assert other[0].status_code == 401
    # Where the connecting address is not a trusted proxy, X-Forwarded-For is ignored:
    # changing it does not buy more attempts.
    varied = [(f"nobody{n}", PASSWORD, _address(n, block=4)) for n in range(31)]
    statuses = sorted(a.status_code for a in run_blocking(_sign_ins(closed_site, varied)))
    assert statuses == [401] * 30 + [429]


# -- row 3: stalls anyone can cause ---------------------------------------------------------


def test_sign_ins_in_flight_do_not_stall_other_requests(site: Site) -> None:
    async def scenario() -> tuple[list[httpx.Response], list[float]]:
        sign_ins = asyncio.create_task(
            _sign_ins(site, [(f"unknown{n}", PASSWORD, _address(n, block=5)) for n in range(60)])
        )
        latencies = []
        async with httpx.AsyncClient(base_url=site.base, timeout=30) as client:
            await asyncio.sleep(0.05)  # the sign-ins are in
            while not sign_ins.done():
                started = time.perf_counter()
                answer = await client.get("/healthz")
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 200
                await asyncio.sleep(0.01)
        return await sign_ins, latencies

    answers, latencies = run_blocking(scenario())
    assert {a.status_code for a in answers} == {401}
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"\n/healthz during 60 sign-ins: {len(latencies)} requests, p99 {p99 * 1000:.0f} ms")
    # The sign-ins were in flight long enough to measure, and /healthz kept answering beside
    # them. The latency is printed for docs/reliability.md, not asserted: timings belong to
    # the benchmarks, and a slower machine must not fail the suite.
    assert len(latencies) >= 20


# -- row 4: bodies the server reads before refusing -----------------------------------------


def test_big_bodies_are_refused_unread_whatever_they_claim(site: Site) -> None:
    port = int(site.base.rsplit(":", 1)[1])
    multipart = {"Content-Type": "multipart/form-data; boundary=x"}

    def sixteen_megabytes() -> Iterator[bytes]:
        for _ in range(16):
            yield b"x" * MB

    def eight_at_once(path: str, *, chunked: bool) -> list[tuple[int, dict[str, Any], int]]:
        headers = multipart if chunked else multipart | {"Content-Length": str(16 * MB)}
        with ThreadPoolExecutor(8) as senders:
            return list(
                senders.map(
                    lambda _: raw_post(port, path, headers, sixteen_megabytes(), chunked=chunked),
                    range(8),
                )
            )

    with PeakMemory(site.pid) as memory:
        answers = {
            "webhook, Content-Length": eight_at_once("/api/v1/webhooks/clerk", chunked=False),
            "webhook, chunked": eight_at_once("/api/v1/webhooks/clerk", chunked=True),
            "sign-in, chunked": eight_at_once("/signin", chunked=True),
            "upload without credential": eight_at_once(
                "/api/v1/campaigns/any/recipients", chunked=False
            ),
        }
    print(f"\n32 bodies of 16 MB: the server grew by {memory.growth_kib / 1024:.1f} MB")
    for name, results in answers.items():
        statuses = {status for status, _, _ in results}
        expected = {401} if name.startswith("upload") else {413}
        if name == "sign-in, chunked":
            # The form parser may find the x's are not multipart (400) before the limit
            # cuts the body off (413): refused either way, with nothing held.
            assert statuses <= {400, 413}, (name, statuses)
            continue
        assert statuses == expected, (name, statuses)
        body = results[0][1]
        if expected == {413}:
            assert "larger than 65,536 bytes" in body["error"]["message"], body
    assert memory.growth_kib < 50 * 1024
    # A page of an upload route, fetched without a body, is still a page.
    with site.client() as visitor:
        page = visitor.get("/campaigns/new")
    assert page.status_code == 303 and page.headers["location"] == "/signin"


# -- row 6: a long import and everyone else -----------------------------------------------------


def test_a_100k_row_import_does_not_hold_up_other_users(site: Site) -> None:
    site.user("importer")
    with site.client() as client:
        client.post(
            "/api/v1/auth/login", json={"login_id": "importer", "password": PASSWORD}
        ).raise_for_status()
        csrf = client.cookies["mailramp_csrf"]
        headers = {"X-CSRF-Token": csrf}
        mailbox = client.post(
            "/api/v1/mailboxes",
            json={"email": "bulk@acme.com", "provider": "smtp", "smtp_host": "127.0.0.1",
                  "password": "pw", "daily_limit": 10_000},
            headers=headers,
        ).json()  # fmt: skip
        campaign = client.post(
            "/api/v1/campaigns",
            json={"mailbox_id": mailbox["_id"], "campaign_name": "Bulk", "subject": "Hi",
                  "message": "Hello", "duration": 24 * 90,
                  "start_time": next_monday(system_now()).isoformat()},
            headers=headers,
        ).json()  # fmt: skip
        key = client.post("/api/v1/api-keys", json={"name": "bulk"}, headers=headers).json()["key"]
    other = site.user("bystander")["user"]
    with site.client() as client:
        client.post(
            "/api/v1/auth/login", json={"login_id": "bystander", "password": PASSWORD}
        ).raise_for_status()
        other_key = client.post(
            "/api/v1/api-keys",
            json={"name": "bystander"},
            headers={"X-CSRF-Token": client.cookies["mailramp_csrf"]},
        ).json()["key"]
    data = big_csv(100_000)

    def upload() -> httpx.Response:
        with site.client(headers={"Authorization": f"Bearer {key}"}, timeout=900) as uploader:
            return uploader.post(
                f"/api/v1/campaigns/{campaign['campaign_id']}/recipients",
                files={"file": ("people.csv", data, "text/csv")},
            )

    latencies: dict[str, list[float]] = {"sign-in": [], "API key": []}
    with ThreadPoolExecutor(1) as background:
        imported = background.submit(upload)
        time.sleep(2)  # the import is under way
        with site.client() as bystander:
            while not imported.done():
                started = time.perf_counter()
                signed_in = bystander.post(
                    "/api/v1/auth/login", json={"login_id": "bystander", "password": PASSWORD}
                )
                latencies["sign-in"].append(time.perf_counter() - started)
                assert signed_in.status_code == 200, signed_in.text
                started = time.perf_counter()
                me = bystander.get("/api/v1/me", headers={"Authorization": f"Bearer {other_key}"})
                latencies["API key"].append(time.perf_counter() - started)
                assert me.json()["_id"] == other["_id"]
        answer = imported.result()
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 100_000
    figures = {}
    for name, spent in latencies.items():
        ordered = sorted(spent)
        figures[name] = (len(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])
    print(
        "\nduring a 100,000-row import: "
        + ", ".join(f"{n} {c} requests, p99 {p * 1000:.0f} ms" for n, (c, p) in figures.items())
    )
    # Held up, each request waited for the import (47 s and 40.8 s before the fix): two or
    # three answers in all. Served beside it, dozens. The latencies are printed, not asserted:
    # how fast a machine answers is for the benchmarks (docs/performance.md), not the tests.
    assert all(count >= 20 for count, _ in figures.values()), figures


# -- rows 5 and 8: Clerk's webhooks ---------------------------------------------------------


def test_closed_sign_up_is_not_bypassed_by_clerks_webhook(
    closed_site: Site, clerk_key: RsaKey
) -> None:
    body, headers = signed_delivery(user_event("user.created", "user_newcomer", "New"))
    with closed_site.client() as client:
        delivered = client.post("/api/v1/webhooks/clerk", content=body, headers=headers)
        assert delivered.status_code == 200  # Svix must not retry it
        assert delivered.json()["handled"] is False
        assert "sign-up is closed" in delivered.json()["reason"]
        token = clerk_key.token(sub="user_newcomer", azp=closed_site.base)
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 403 and "sign-up is closed" in me.json()["error"]["message"]


def test_a_replayed_webhook_delivery_changes_nothing(site: Site, clerk_key: RsaKey) -> None:
    url = "/api/v1/webhooks/clerk"
    first_body, first_headers = signed_delivery(user_event("user.updated", "user_replay", "Old"))
    with site.client() as client:
        assert client.post(url, content=first_body, headers=first_headers).json()["handled"]
        body, headers = signed_delivery(user_event("user.updated", "user_replay", "Current"))
        assert client.post(url, content=body, headers=headers).json()["handled"]
        replayed = client.post(url, content=first_body, headers=first_headers)
        assert replayed.status_code == 200
        assert replayed.json() == {
            "handled": False,
            "reason": "this delivery was already processed",
        }
        token = clerk_key.token(sub="user_replay", azp=site.base)
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["user_name"] == "Current Hook"


# -- row 7: equal timing and answers ----------------------------------------------------------


def test_locked_unknown_and_wrong_take_the_same_time_and_say_the_same(site: Site) -> None:
    site.user("locked-one")
    site.user("wrong-one")
    lock = [("locked-one", f"bad {n}", _address(n, block=6)) for n in range(5)]
    run_blocking(_sign_ins(site, lock))
    assert site.row("locked-one")[0] == 5
    cases = {"locked": "locked-one", "unknown": "no-such-one", "wrong": "wrong-one"}
    times: dict[str, list[float]] = {case: [] for case in cases}
    bodies: dict[str, set[str]] = {case: set() for case in cases}
    with site.client() as client:
        for round_ in range(20):  # interleaved, so load on the machine falls on all three
            for case, login in cases.items():
                password = PASSWORD if case != "wrong" else f"wrong {round_}"
                if case == "wrong":
                    site.reset_failures(login)  # wrong, but never locked
                started = time.perf_counter()
                answer = client.post(
                    "/api/v1/auth/login",
                    json={"login_id": login, "password": password},
                    headers={"X-Forwarded-For": _address(round_ * 3 + len(case), block=7)},
                )
                times[case].append(time.perf_counter() - started)
                bodies[case].add(f"{answer.status_code} {answer.text}")
    medians = {case: statistics.median(spent) for case, spent in times.items()}
    print("\nmedian answer: " + ", ".join(f"{c} {m * 1000:.0f} ms" for c, m in medians.items()))
    assert max(medians.values()) <= 1.2 * min(medians.values()), medians
    answers = set().union(*bodies.values())
    assert answers == {
        '401 {"error":{"code":"unauthenticated","message":"invalid login or password"}}'
    }


# -- row 9: API keys and password changes -----------------------------------------------------


def test_api_keys_end_with_a_password_change_and_cannot_mint_keys_alone(site: Site) -> None:
    signed_up = site.user("keyholder")
    with site.client() as browser:
        browser.post(
            "/api/v1/auth/login", json={"login_id": "keyholder", "password": PASSWORD}
        ).raise_for_status()
        csrf = browser.cookies["mailramp_csrf"]
        made = browser.post(
            "/api/v1/api-keys", json={"name": "made in a session"}, headers={"X-CSRF-Token": csrf}
        )
        assert made.status_code == 201
        key = made.json()["key"]
        with site.client(headers={"Authorization": f"Bearer {key}"}) as script:
            for body in ({"name": "minted"}, {"name": "minted", "password": "not it at all"}):
                refused = script.post("/api/v1/api-keys", json=body)
                assert refused.status_code == 403, refused.text
                assert "password" in refused.json()["error"]["message"]
            minted = script.post("/api/v1/api-keys", json={"name": "minted", "password": PASSWORD})
            assert minted.status_code == 201
            changed = browser.post(
                "/api/v1/auth/password",
                json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
                headers={"X-CSRF-Token": csrf},
            )
            assert changed.json() == {"ended_sessions": 1, "revoked_api_keys": 2}
            assert script.get("/api/v1/me").status_code == 401
            other = {"Authorization": f"Bearer {minted.json()['key']}"}
            assert script.get("/api/v1/me", headers=other).status_code == 401
        assert browser.get("/api/v1/me").json()["_id"] == signed_up["user"]["_id"]


# -- row 10: dates at the ends of the calendar --------------------------------------------------


def test_dates_out_of_range_are_422_naming_the_field(site: Site) -> None:
    site.user("calendar")
    with site.client() as client:
        token = client.post(
            "/api/v1/auth/login", json={"login_id": "calendar", "password": PASSWORD}
        ).json()["csrf_token"]
        headers = {"X-CSRF-Token": token}
        mailbox = client.post(
            "/api/v1/mailboxes",
            json={"email": "c@acme.com", "provider": "smtp", "smtp_host": "127.0.0.1",
                  "password": "pw"},
            headers=headers,
        ).json()  # fmt: skip
        base = {
            "mailbox_id": mailbox["_id"],
            "campaign_name": "Calendar",
            "subject": "Hi",
            "message": "Hello",
        }
        created = client.post(
            "/api/v1/campaigns",
            json=base | {"duration": 24, "start_time": next_monday(system_now()).isoformat()},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["campaign_id"]
        cases = [
            ("POST", "/api/v1/campaigns",
             base | {"duration": 1, "start_time": "0001-01-01T00:00+01:00"}, "start_time"),
            ("PATCH", f"/api/v1/campaigns/{campaign_id}",
             {"start_time": "9999-12-31T23:00Z", "duration": 8784}, "start_time"),
            ("POST", "/api/v1/campaigns",
             base | {"duration": 8784, "start_time": "9999-12-31T23:00:00Z"}, "start_time"),
            ("POST", "/api/v1/campaigns",  # a leap second; a naive time
             base | {"duration": 1, "start_time": "2027-01-10T09:00:60Z"}, "start_time"),
            ("POST", "/api/v1/campaigns",
             base | {"duration": 1, "start_time": "2027-01-10T09:00:00"}, "start_time"),
        ]  # fmt: skip
        for method, path, body, field in cases:
            answer = client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"]["field"] == field, answer.text
        assert client.get(f"/api/v1/campaigns/{campaign_id}").json() == created.json()


def test_the_attacks_left_no_trace_of_a_crash(site: Site) -> None:
    log = (site.directory / "serve.log").read_text()
    assert '" 500' not in log and "Traceback" not in log
    assert run_mailramp("--help", cwd=site.directory).returncode == 0
