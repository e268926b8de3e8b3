"""An admin's day on a running instance (issue 28, item 1), through a real `mailramp serve`
and the real command line sharing one database: the first user is the admin; they invite a
second one; the operator gives that user a key from the shell, deactivates them (their
session and both keys refused on the very next request), the admin reactivates them, the
operator resets their password, the admin makes them an admin from the dashboard; the
audit log lists each action, who did it and to whom — read by the API, the CLI and the page.
Before that, the second user is refused 403 on every admin route the app has, API and
dashboard, by key and by session."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from fastapi.routing import APIRoute

from mailramp.web.admin import api as admin_api
from mailramp.web.admin import pages as admin_pages
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, run_mailramp, serving

ANN = {"user_name": "Ann Lee", "login_id": "ann@acme.com", "password": "ann's long passphrase"}
BOB = "bob@acme.com"
SOMEONE = "675a1f0c9b1e8a3d4c2b1a09"


class Browser:
    """A signed-in person: the session cookie in the client, the CSRF token beside it."""

    opened: ClassVar[list[Browser]] = []

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=20)
        self.csrf = ""
        Browser.opened.append(self)

    def start(self, path: str, body: dict[str, str]) -> httpx.Response:
        answer = self.client.post(path, json=body)
        if answer.status_code in (200, 201):
            self.csrf = answer.json()["csrf_token"]
        return answer

    def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf}
        return self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    env = clean_environment(MAILRAMP_SIGNUP_OPEN="false")
    port = free_port()
    assert run_mailramp("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    with serving(port, cwd=tmp_path, env=env):
        yield f"http://127.0.0.1:{port}", tmp_path, env
    for browser in Browser.opened:
        browser.client.close()
    Browser.opened.clear()


LOGIN = "/api/v1/auth/login"


def signs_in(base: str, login: str, password: str) -> int:
    """The status a sign-in with this password gets (a fresh browser)."""
    return Browser(base).start(LOGIN, {"login_id": login, "password": password}).status_code


def cli(place: tuple[str, Path, dict[str, str]], *args: str) -> str:
    _, cwd, env = place
    done = run_mailramp(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout  # our own lines: never wrapped, whatever the terminal


def admin_routes() -> list[tuple[str, str]]:
    """Every admin route the app has, API and dashboard, with its method."""
    found = []
    for router in (admin_api.router, admin_pages.router):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            path = route.path.replace("{user_id}", SOMEONE).replace("{action}", "deactivate")
            found += [(method, path) for method in sorted(route.methods)]
    return found


def test_an_admins_day(instance: tuple[str, Path, dict[str, str]]) -> None:
    base = instance[0]
    # Sign-up is closed on this instance; the operator makes its first user, who is admin.
    created = run_mailramp(
        "user", "create", "--name", ANN["user_name"], "--login", ANN["login_id"],
        "--password-stdin", cwd=instance[1], env=instance[2], stdin=ANN["password"] + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"created user ann@acme.com \([0-9a-f]{24}, admin\)\n", created.stdout)
    ann = Browser(base)
    signed_in = ann.start(
        "/api/v1/auth/login", {"login_id": ANN["login_id"], "password": ANN["password"]}
    )
    assert signed_in.status_code == 200 and signed_in.json()["user"]["is_admin"] is True

    # The admin invites Bob: the answer carries his password, this once.
    invited = ann.call(
        "POST", "/api/v1/admin/users", json={"user_name": "Bob Stone", "login_id": BOB}
    )
    assert invited.status_code == 201, invited.text
    assert invited.headers["cache-control"] == "no-store"
    bob_id = invited.json()["user"]["_id"]
    first_password = invited.json()["password"]
    assert invited.json()["user"]["is_admin"] is False and len(first_password) == 20
    bob = Browser(base)
    assert bob.start(LOGIN, {"login_id": BOB, "password": first_password}).status_code == 200
    own_key = bob.call("POST", "/api/v1/api-keys", json={"name": "laptop"}).json()["key"]

    # Bob is no admin: 403 on every admin route, by key and by session, API and dashboard.
    routes = admin_routes()
    assert len(routes) >= 12
    for method, path in routes:
        api = path.startswith("/api/")
        body: dict[str, object] = {}
        if method != "GET":
            body = {"json": {}} if api else {"data": {"csrf_token": bob.csrf}}
        key = {"Authorization": f"Bearer {own_key}"}
        by_key = httpx.request(method, base + path, headers=key, timeout=20, **body)  # type: ignore[arg-type]
        by_session = bob.call(method, path, **body)
        # The dashboard takes sessions only: a key there is sent to sign in.
        assert by_key.status_code == (403 if api else 303), (method, path, by_key.text)
        assert by_session.status_code == 403, (method, path, by_session.text)
        assert by_session.json()["error"]["code"] == "forbidden"
    assert bob.call("GET", "/admin").status_code == 403

    # The operator gives Bob a key from the shell; it works.
    made = cli(instance, "key", "create", "--user", BOB, "--name", "deploy")
    shell_key = made.splitlines()[-1]
    assert made.startswith("created API key deploy (mr_") and shell_key.startswith("mr_")
    me = {"Authorization": f"Bearer {shell_key}"}
    assert httpx.get(f"{base}/api/v1/me", headers=me, timeout=20).json()["login_id"] == BOB
    listed = cli(instance, "key", "list", "--user", BOB)
    assert [line.split()[2] for line in listed.splitlines()] == ["deploy", "laptop"]

    # Deactivated from the shell: his session and both keys are refused on the next request.
    deactivated = cli(instance, "user", "deactivate", BOB)
    assert deactivated.splitlines() == [
        f"deactivated {BOB}",
        "1 session(s) ended, 2 API key(s) revoked",
    ]
    assert bob.call("GET", "/api/v1/me").status_code == 401
    for key in (own_key, shell_key):
        refused = httpx.get(
            f"{base}/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=20
        )
        assert refused.status_code == 401
    assert signs_in(base, BOB, first_password) == 401
    users = cli(instance, "user", "list").splitlines()
    assert [line.split()[1] for line in users] == [ANN["login_id"], BOB]
    assert users[0].endswith("[admin]") and users[1].endswith("[deactivated]")

    # The admin reactivates him over the API: he signs in again; the old session stays ended.
    back = ann.call("POST", f"/api/v1/admin/users/{bob_id}/reactivate")
    assert back.status_code == 200 and back.json()["user"]["is_active"] is True
    assert bob.call("GET", "/api/v1/me").status_code == 401
    for key in (own_key, shell_key):  # revoked, not merely refused while he was inactive
        refused = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401
    again = Browser(base)
    assert again.start(LOGIN, {"login_id": BOB, "password": first_password}).status_code == 200

    # The operator resets his password: the new one works, the old one and his session not.
    reset = cli(instance, "user", "reset-password", BOB).splitlines()
    assert reset[0].startswith(f"new password for {BOB} (shown this once): ")
    assert reset[1] == "1 session(s) ended, 0 API key(s) revoked"
    new_password = reset[0].rsplit(" ", 1)[1]
    assert again.call("GET", "/api/v1/me").status_code == 401
    assert signs_in(base, BOB, first_password) == 401
    assert signs_in(base, BOB, new_password) == 200

    # The admin makes him an admin from the dashboard page; then he reads the user list.
    page = ann.client.get("/admin")
    assert page.status_code == 200 and f'data-login="{BOB}"' in page.text
    made_admin = ann.client.post(f"/admin/users/{bob_id}/make-admin", data={"csrf_token": ann.csrf})
    assert made_admin.status_code == 200 and f"made an admin: {BOB}" in made_admin.text
    bob_now = Browser(base)
    bob_now.start("/api/v1/auth/login", {"login_id": BOB, "password": new_password})
    assert [u["login_id"] for u in bob_now.call("GET", "/api/v1/admin/users").json()] == [
        ANN["login_id"],
        BOB,
    ]

    # Over the API too: a password reset (his new session ends), and the admin flag taken
    # back; the serve process's own worker is listed, alive.
    reset_by_api = ann.call("POST", f"/api/v1/admin/users/{bob_id}/password-reset")
    assert reset_by_api.headers["cache-control"] == "no-store"
    assert len(reset_by_api.json()["password"]) == 20
    assert reset_by_api.json()["ended_sessions"] == 2  # his two sign-ins since the last reset
    assert signs_in(base, BOB, reset_by_api.json()["password"]) == 200
    assert bob_now.call("GET", "/api/v1/admin/users").status_code == 401
    unmade = ann.call("DELETE", f"/api/v1/admin/users/{bob_id}/admin")
    assert unmade.status_code == 200 and unmade.json()["user"]["is_admin"] is False
    remade = ann.call("PUT", f"/api/v1/admin/users/{bob_id}/admin")
    assert remade.status_code == 200 and remade.json()["user"]["is_admin"] is True
    workers = ann.call("GET", "/api/v1/admin/workers").json()
    assert [(w["state"], w["held"]) for w in workers] == [("alive", 0)]

    # A change by the admin's cookie needs its CSRF token, in the API and on the page.
    forged = ann.client.post(f"/api/v1/admin/users/{bob_id}/deactivate")
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["error"]["message"]
    forged_form = ann.client.post(f"/admin/users/{bob_id}/deactivate", data={"csrf_token": "x"})
    assert forged_form.status_code == 403
    assert "[deactivated]" not in cli(instance, "user", "list")

    # Nobody locks themselves out: the admin cannot deactivate their own account.
    own = ann.call("POST", f"/api/v1/admin/users/{signed_in.json()['user']['_id']}/deactivate")
    assert own.status_code == 409 and "their own account" in own.json()["error"]["message"]

    # The audit log: each action, newest first, with who did it — API, CLI and the page.
    entries = ann.call("GET", "/api/v1/admin/audit").json()
    operator = entries[4]["actor"]
    assert re.fullmatch(r"operator \S+@\S+ \(command line\)", operator)
    assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
        ("user.make_admin", ANN["login_id"], BOB),
        ("user.remove_admin", ANN["login_id"], BOB),
        ("user.reset_password", ANN["login_id"], BOB),
        ("user.make_admin", ANN["login_id"], BOB),
        ("user.reset_password", operator, BOB),
        ("user.reactivate", ANN["login_id"], BOB),
        ("user.deactivate", operator, BOB),
        ("key.create", operator, BOB),
        ("user.invite", ANN["login_id"], BOB),
        ("user.invite", operator, ANN["login_id"]),
    ]
    assert entries[6]["detail"] == "1 session(s) ended, 2 API key(s) revoked"
    assert entries[0]["actor_id"] == signed_in.json()["user"]["_id"]
    assert entries[4]["actor_id"] is None
    shell = json.loads(cli(instance, "audit", "list", "--json"))
    assert [entry["action"] for entry in shell] == [entry["action"] for entry in entries]
    text = cli(instance, "audit", "list", "--limit", "2").splitlines()
    assert len(text) == 2 and text[0].endswith(f"{ANN['login_id']}  user.make_admin  {BOB}")
    page = ann.client.get("/admin").text
    assert page.count('data-action="user.') == 9 and page.count('data-action="key.create"') == 1
