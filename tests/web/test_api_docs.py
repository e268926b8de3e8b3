"""`/docs` works on a machine with no internet: Swagger UI's assets come from mailramp
itself, under the same strict Content-Security-Policy as every page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.web.conftest import screenshot


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    environment = clean_environment(MAILRAMP_RUN_WORKER="false")
    with serving(port, cwd=tmp_path_factory.mktemp("docs"), env=environment):
        yield f"http://127.0.0.1:{port}"


def test_docs_render_every_operation_with_the_internet_cut(site: str, page: Any) -> None:
    elsewhere: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(site):
            route.continue_()
        else:  # the internet is cut: any request leaving for it fails, and is noted
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    response = page.goto(site + "/docs")
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/campaigns" in paths and "/api/v1/inbound/unmatched" in paths
    methods = page.locator(".opblock-summary-method").all_inner_texts()
    assert len(methods) == len(paths) > 40
    assert page.inner_text(".info .title").startswith("mailramp")
    screenshot(page, "api-docs")
    assert elsewhere == []
    assert page.problems == []  # no script error, no policy violation
    # FastAPI's own CDN pages are not served.
    assert page.goto(site + "/redoc").status == 404  # type: ignore[union-attr]
