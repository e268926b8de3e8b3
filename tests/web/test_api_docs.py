"""`/docs` works on a machine with no internet: Swagger UI's assets come from mailramp
itself, under the same strict Content-Security-Policy as every page. The OpenAPI document
behind it is valid and says what the server answers; methods behave as HTTP says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from mailramp.errors import ValidationError
from mailramp.kit.validation import campaign_id_arg, object_id_arg
from mailramp.web.openapi import OBJECT_ID, UUID4
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


def _signed_up(site: str) -> dict[str, str]:
    """Headers of a new user's API key."""
    with httpx.Client(base_url=site) as client:
        signed_up = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Doc", "login_id": "doc", "password": "documented passphrase"},
        )
        csrf = signed_up.json()["csrf_token"]
        made = client.post("/api/v1/api-keys", json={"name": "d"}, headers={"X-CSRF-Token": csrf})
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_the_document_is_valid_and_every_answer_it_lists_is_what_comes(site: str) -> None:
    document = httpx.get(site + "/openapi.json").json()
    validate(document)  # the OpenAPI 3.1 specification
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    ids = [operation["operationId"] for operation in operations.values()]
    assert len(set(ids)) == len(ids) == len(operations) > 70
    assert operations["POST", "/api/v1/campaigns"]["operationId"] == "create_campaign"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = {"$ref": "#/components/schemas/ErrorPublic"}
    for (_, path), operation in operations.items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == error, (path, status)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                assert parameter["schema"]["pattern"] in (OBJECT_ID["pattern"], UUID4["pattern"])

    # What the server answers is listed for the operation, in the documented shape.
    key = _signed_up(site)
    unknown = "0123456789abcdef01234567"
    answers = [
        ("GET", "/api/v1/me", "/api/v1/me", {}, None, 401),
        ("GET", "/api/v1/mailboxes/{mailbox_id}", "/api/v1/mailboxes/nope", key, None, 422),
        ("GET", "/api/v1/mailboxes/{mailbox_id}", f"/api/v1/mailboxes/{unknown}", key, None, 404),
        ("POST", "/api/v1/campaigns", "/api/v1/campaigns", key, b'{"campaign_name": ', 422),
        ("POST", "/api/v1/campaigns", "/api/v1/campaigns", key, b"[" * 5000 + b"]" * 5000, 400),
        ("POST", "/api/v1/lead-labels", "/api/v1/lead-labels", key, b'{"name": "Hot"}', 201),
        ("POST", "/api/v1/lead-labels", "/api/v1/lead-labels", key, b'{"name": "hot"}', 409),
    ]
    for method, template, path, headers, body, status in answers:
        answer = httpx.request(
            method,
            site + path,
            headers={**headers, "Content-Type": "application/json"},
            content=body,
        )
        assert answer.status_code == status, (path, answer.text)
        assert str(status) in operations[method, template]["responses"], (template, status)
        if status >= 400:
            assert set(answer.json()["error"]) <= {"code", "message", "field"}


def test_methods_as_http_says(site: str) -> None:
    refused = httpx.delete(site + "/api/v1/campaigns")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert refused.json()["error"]["code"] == "method_not_allowed"
    options = httpx.options(site + "/api/v1/campaigns/0b7c5b5e-4f1e-4b8a-9d3c-2a1b0c9d8e7f")
    assert (options.status_code, options.headers["allow"]) == (204, "GET, HEAD, OPTIONS, PATCH")
    assert httpx.options(site + "/nowhere").status_code == 404
    got, head = httpx.get(site + "/static/app.css"), httpx.head(site + "/static/app.css")
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert httpx.head(site + "/api/v1/me").status_code == 401  # as GET would: no key
    static = httpx.post(site + "/static/app.css")
    assert (static.status_code, static.headers["allow"]) == (405, "GET, HEAD, OPTIONS")


@settings(max_examples=50, deadline=None)
@given(value=st.one_of(st.from_regex(OBJECT_ID["pattern"], fullmatch=True), st.text(max_size=30)))
def test_an_objectid_the_document_allows_is_one_the_server_takes(value: str) -> None:
    documented = re.fullmatch(OBJECT_ID["pattern"], value) is not None
    try:
        object_id_arg(value, field="mailbox_id")
    except ValidationError:
        taken = False
    else:
        taken = True
    assert taken is documented


@settings(max_examples=50, deadline=None)
@given(
    value=st.one_of(
        st.uuids(version=4).map(str),
        st.from_regex(UUID4["pattern"], fullmatch=True),
        st.text(max_size=40),
    )
)
def test_a_campaign_id_the_document_allows_is_one_the_server_takes(value: str) -> None:
    documented = re.fullmatch(UUID4["pattern"], value) is not None
    try:
        campaign_id_arg(value)
    except ValidationError:
        taken = False
    else:
        taken = True
    assert taken is documented
