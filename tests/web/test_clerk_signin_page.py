"""Clerk's front end on /signin, in a real browser: ClerkJS from the instance's Frontend API
(a stand-in on loopback, tests/support/clerk_frontend.py) runs under the sign-in page's
Content-Security-Policy, its session token is traded for a dashboard session, and signing
out ends both.

With `MAILRAMP_TEST_CLERK_PUBLISHABLE_KEY` set (a real Clerk development instance, network
needed), `test_real_clerkjs_mounts_under_the_policy` loads the real ClerkJS instead and
checks that its sign-in component renders with no policy violation."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mailramp.auth.clerk import clerk_frontend, frontend_api_origin
from mailramp.errors import ConfigurationError
from mailramp.web.deps import CONTENT_SECURITY_POLICY
from tests.support.clerk_frontend import ClerkFrontendApi
from tests.support.jwks import RsaKey
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.web.conftest import screenshot

PUBLISHABLE_KEY = "pk_test_" + base64.b64encode(b"clerk.example.com$").decode().rstrip("=")


def test_the_frontend_api_is_read_from_the_publishable_key() -> None:
    assert frontend_api_origin(PUBLISHABLE_KEY) == "https://clerk.example.com"
    live = "pk_live_" + base64.b64encode(b"clerk.acme.io$").decode()
    assert frontend_api_origin(live) == "https://clerk.acme.io"
    for broken in ("pk_test_", "pk_prod_Y2xlcmsuZXhhbXBsZS5jb20k", "pk_test_not base64!", "sk_x"):
        with pytest.raises(ConfigurationError, match="publishable key"):
            clerk_frontend(broken, None)
    no_dollar = "pk_test_" + base64.b64encode(b"clerk.example.com").decode()
    with pytest.raises(ConfigurationError):
        frontend_api_origin(no_dollar)
    assert clerk_frontend(None, None) is None
    assert clerk_frontend(PUBLISHABLE_KEY, "http://127.0.0.1:9/").origin == "http://127.0.0.1:9"  # type: ignore[union-attr]


def test_the_sign_in_policy_adds_only_what_clerk_documents() -> None:
    front = clerk_frontend(PUBLISHABLE_KEY, None)
    assert front is not None
    policy = dict(
        part.strip().split(" ", 1)
        for part in front.content_security_policy(CONTENT_SECURITY_POLICY).split(";")
    )
    assert (
        policy["script-src"] == "'self' https://clerk.example.com https://challenges.cloudflare.com"
    )
    assert policy["connect-src"] == "'self' https://clerk.example.com"
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["img-src"] == "'self' data: https://img.clerk.com"
    assert policy["worker-src"] == "'self' blob:"
    assert policy["frame-src"] == "'self' https://challenges.cloudflare.com"
    # Unchanged: no framing, no plugins, forms only to us.
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["form-action"] == "'self'" and policy["base-uri"] == "'none'"


@pytest.fixture(scope="module")
def clerk_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ClerkFrontendApi]]:
    api = ClerkFrontendApi(RsaKey("ins_browser")).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_PUBLIC_BASE_URL=base,
        CLERK_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
        MAILRAMP_CLERK_FRONTEND_API_URL=api.origin,
        MAILRAMP_CLERK_AUTHORIZED_PARTIES=base,
    )
    try:
        with serving(port, cwd=tmp_path_factory.mktemp("clerk-site"), env=environment):
            yield base, api
    finally:
        api.stop()


def test_sign_in_with_clerk_then_sign_out(
    clerk_site: tuple[str, ClerkFrontendApi], page: Any
) -> None:
    site, api = clerk_site
    response = page.goto(site + "/signin")
    policy = response.headers["content-security-policy"]
    assert f"script-src 'self' {api.origin} https://challenges.cloudflare.com" in policy
    # ClerkJS mounted its form; the page's own local form is still there below it.
    page.wait_for_selector("button:has-text('Continue with Clerk')")
    assert page.locator("input[name=login_id]").count() == 1
    screenshot(page, "signin-clerk")
    page.fill("input[name=identifier]", "grace@example.com")
    page.click("button:has-text('Continue with Clerk')")
    page.wait_for_url(site + "/campaigns")
    assert "Grace" in page.inner_text("header")
    assert api.sign_ins == ["grace@example.com"]
    # Every other page keeps the strict policy: no Clerk origin, no inline style.
    strict = httpx.get(site + "/signup").headers["content-security-policy"]
    assert strict == CONTENT_SECURITY_POLICY
    # The dashboard session is ours (CSRF and all): the page can create an API key.
    page.goto(site + "/settings")
    page.fill("input[name=name]", "from clerk")
    page.click("button:has-text('Create key')")
    assert page.locator("text=from clerk").count() >= 1

    page.click("button:has-text('Sign out')")
    page.wait_for_url(site + "/signin?signed_out=1")
    page.wait_for_selector("button:has-text('Continue with Clerk')")
    # Clerk's session ended too: reloading the sign-in page does not sign back in.
    page.goto(site + "/signin")
    page.wait_for_selector("button:has-text('Continue with Clerk')")
    assert page.url == site + "/signin"
    assert page.problems == []


def test_a_token_for_another_site_is_refused_and_said_so(
    clerk_site: tuple[str, ClerkFrontendApi],
) -> None:
    site, api = clerk_site
    token = api.key.token(sub="user_x", azp="https://evil.example", iss=api.origin)
    refused = httpx.post(
        site + "/signin/clerk", headers={"Authorization": f"Bearer {token}", "Origin": site}
    )
    assert refused.status_code == 401 and "mailramp_session" not in refused.cookies
    good = api.key.token(sub="user_y", email="y@example.com", azp=site, iss=api.origin)
    cross = httpx.post(
        site + "/signin/clerk",
        headers={"Authorization": f"Bearer {good}", "Origin": "https://evil.example"},
    )
    assert cross.status_code == 403, cross.text
    accepted = httpx.post(
        site + "/signin/clerk", headers={"Authorization": f"Bearer {good}", "Origin": site}
    )
    assert accepted.status_code == 200 and accepted.json() == {"redirect": "/campaigns"}
    assert accepted.cookies["mailramp_session"] and accepted.cookies["mailramp_csrf"]


def test_clerkjs_that_cannot_load_is_reported_on_the_page(
    tmp_path_factory: pytest.TempPathFactory, page: Any
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_PUBLIC_BASE_URL=base,
        CLERK_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
        MAILRAMP_CLERK_FRONTEND_API_URL=f"http://127.0.0.1:{free_port()}",  # nothing there
    )
    with serving(port, cwd=tmp_path_factory.mktemp("clerk-down"), env=environment):
        page.goto(base + "/signin")
        alert = page.wait_for_selector("#clerk-error:not([hidden])")
        assert "could not load from http://127.0.0.1:" in alert.inner_text()
        # Local accounts still work.
        assert page.locator("input[name=login_id]").count() == 1


@pytest.mark.real_service("MAILRAMP_TEST_CLERK_PUBLISHABLE_KEY")
def test_real_clerkjs_mounts_under_the_policy(
    tmp_path_factory: pytest.TempPathFactory, page: Any
) -> None:
    port = free_port()
    base = f"http://localhost:{port}"
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_PUBLIC_BASE_URL=base,
        CLERK_PUBLISHABLE_KEY=os.environ["MAILRAMP_TEST_CLERK_PUBLISHABLE_KEY"],
    )
    with serving(port, cwd=tmp_path_factory.mktemp("clerk-real"), env=environment):
        page.goto(base + "/signin")
        page.wait_for_selector(".cl-rootBox, .cl-signIn-root", timeout=30_000)
        assert page.problems == []
