"""`/docs` works on a machine with no internet: Swagger UI's assets come from mailramp
itself, under the same strict Content-Security-Policy as every page. The OpenAPI document
behind it is valid and says what the server answers; methods behave as HTTP says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import TypeAdapter

from mailramp.errors import ValidationError
from mailramp.kit.ids import OBJECT_ID_SCHEMA as OBJECT_ID
from mailramp.kit.ids import UUID4_SCHEMA as UUID4
from mailramp.kit.types import DATE_TIME_SCHEMA, NOT_BLANK, MomentInput, Name
from mailramp.kit.validation import campaign_id_arg, object_id_arg
from tests.web.conftest import api_site, screenshot


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_site(tmp_path_factory.mktemp("docs")) as base:
        yield base


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


def _signed_up(site: str, login: str = "doc") -> dict[str, str]:
    """Headers of a new user's API key."""
    with httpx.Client(base_url=site) as client:
        signed_up = client.post(
            "/api/v1/auth/signup",
            json={"user_name": "Doc", "login_id": login, "password": "documented passphrase"},
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
            if int(status) >= 400 and (path, status) != ("/healthz", "503"):
                assert response["content"]["application/json"]["schema"] == error, (path, status)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                assert parameter["schema"]["pattern"] in (OBJECT_ID["pattern"], UUID4["pattern"])
    # Every JSON body has an example (shown by /docs, tried by the fuzz run's examples
    # phase), and it is one the document's schema accepts.
    for (_, path), operation in operations.items():
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None or operation["operationId"] == "clerk_webhook":
            continue
        assert "example" in body, (path, operation["operationId"])
        checker = Draft202012Validator({**body["schema"], "components": document["components"]})
        assert list(checker.iter_errors(body["example"])) == [], operation["operationId"]
    health = {"$ref": "#/components/schemas/ServiceHealth"}  # 503: the same report as 200
    assert operations["GET", "/healthz"]["responses"]["503"]["content"]["application/json"] == {
        "schema": health
    }

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
    # A path a route names literally is not an id of its neighbour with a parameter.
    clerk = httpx.patch(site + "/api/v1/webhooks/clerk", json={})
    assert (clerk.status_code, clerk.headers["allow"]) == (405, "OPTIONS, POST")
    assert clerk.json()["error"]["code"] == "method_not_allowed"
    assert httpx.options(site + "/api/v1/webhooks/clerk").headers["allow"] == "OPTIONS, POST"


# The moments around the edges of what a datetime can hold, as a client may send them: the
# ones naming no moment mailramp can store are refused naming the field, never a 500.
EDGE_MOMENTS = [
    ("0001-01-01T00:00:01.0+09:02", 422),  # before the first UTC date
    ("0001-01-01T23:59:00+23:59", 422),
    ("0001-12-31T12:00:00Z", 422),  # year 1 is refused whatever the offset
    ("9999-12-31T23:00:00-05:00", 422),  # after the last UTC date
    ("9999-01-01T00:00:00Z", 422),
    ("2026-12-31T23:59:60Z", 422),  # a leap second: no datetime holds it
    ("2016-12-31T23:59:60+00:00", 422),
    ("2027-01-10T09:00:00", 422),  # naive: which zone?
    ("2027-01-10", 422),
    ("2027-01-10T09:00:00+24:00", 422),  # no such offset
    ("2027-01-10T09:00:00+0100", 422),  # not RFC 3339 (the document's format)
    ("2027-01-10T09:00Z", 422),
    ("2027-01-10T09:00:00+23:59", 201),
    ("2027-01-10T09:00:00-23:59", 201),
    ("0002-01-01T00:00:00+23:59", 422),  # 0001-12-31T00:01 UTC: storable, but long past
    ("9998-12-31T23:59:59-23:59", 201),
]


def test_moments_at_the_edges_are_refused_naming_the_field_never_a_server_error(
    site: str,
) -> None:
    key = _signed_up(site, "edges")
    with httpx.Client(base_url=site, headers=key) as client:
        box = client.post(
            "/api/v1/mailboxes",
            json={"email": "edge@acme.com", "provider": "smtp", "smtp_host": "smtp.acme.com",
                  "password": "pw"},
        )  # fmt: skip
        assert box.status_code == 201, box.text
        for moment, status in EDGE_MOMENTS:
            answer = client.post(
                "/api/v1/campaigns",
                json={"mailbox_id": box.json()["_id"], "campaign_name": "Edge", "subject": "Hi",
                      "message": "Hello", "duration": 24, "start_time": moment},
            )  # fmt: skip
            assert answer.status_code == status, (moment, answer.text)
            if status == 422:
                assert answer.json()["error"]["field"] == "start_time", (moment, answer.text)


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


NAMES = TypeAdapter(Name)
MOMENTS = TypeAdapter(MomentInput)


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=210))
def test_a_name_the_document_allows_is_one_the_server_takes(value: str) -> None:
    documented = len(value) <= 200 and re.search(NOT_BLANK, value) is not None
    try:
        NAMES.validate_python(value)
    except pydantic.ValidationError:
        taken = False
    else:
        taken = True
    assert taken is documented


EDGE_YEARS = st.sampled_from([1, 2, 3, 999, 1000, 9989, 9990, 9997, 9998, 9999])


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(timezones=st.timezones()) | st.datetimes(timezones=st.none()),
    year=st.none() | EDGE_YEARS,
)
def test_a_moment_the_document_allows_is_one_the_server_takes(
    moment: datetime, year: int | None
) -> None:
    """The document's pattern and the server agree with each other and with the rule as
    stated: years 2 to 9998, an offset in hours and minutes, no naive time."""
    if year is not None:
        moment = moment.replace(year=year, day=min(moment.day, 28))
    text = moment.isoformat()
    offset = moment.utcoffset()
    intended = offset is not None and offset.seconds % 60 == 0 and 2 <= moment.year <= 9998
    assert (re.search(DATE_TIME_SCHEMA["pattern"], text) is not None) is intended, text
    documented = intended
    try:
        MOMENTS.validate_python(text)
    except pydantic.ValidationError:
        taken = False
    else:
        taken = True
    assert taken is documented, text


def test_json_types_are_the_documents_and_no_text_holds_a_nul(site: str) -> None:
    key = _signed_up(site, "types")
    with httpx.Client(base_url=site, headers=key) as client:
        refused = [
            ("POST", "/api/v1/mailboxes", {"email": "t@acme.com", "provider": "smtp",
             "smtp_host": "smtp.acme.com", "password": "pw", "smtp_port": "25"},
             "smtp_port", "must be an integer or null, not the string '25'"),
            ("POST", "/api/v1/mailboxes", {"email": "t@acme.com", "provider": "smtp",
             "smtp_host": "smtp.acme.com", "password": "pw", "already_warm": 1},
             "already_warm", "must be true or false or null, not 1"),
            ("POST", "/api/v1/campaigns", {"campaign_name": "T", "subject": "s", "message": "m",
             "duration": 1, "start_time": 0, "mailbox_id": "0123456789abcdef01234567"},
             "start_time", "must be a string, not 0"),
            ("POST", "/api/v1/lead-labels", {"name": "Hot\x00"}, "name", "U+0000"),
            ("POST", "/api/v1/mailboxes", {"email": "t@acme.com", "provider": "smtp",
             "smtp_host": "smtp.acme.com", "password": "pw", "user_profile": {"a\x00": 1}},
             "user_profile.a\x00", "U+0000"),
        ]  # fmt: skip
        for method, path, body, field, message in refused:
            answer = client.request(method, path, json=body)
            assert answer.status_code == 422, (body, answer.text)
            error = answer.json()["error"]
            assert (error["field"], message in error["message"]) == (field, True), error
        assert client.get("/api/v1/mailboxes").json() == []  # nothing was made
        search = client.get("/api/v1/inbox", params={"search": "a\x00b"})
        assert (search.status_code, search.json()["error"]["field"]) == (422, "search")
        # A body an operation does not read is not read, whatever it holds.
        ignored = client.post(
            "/api/v1/campaigns/0b7c5b5e-4f1e-4b8a-9d3c-2a1b0c9d8e7f/launch",
            content=b"{not json", headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert ignored.status_code == 404, ignored.text
