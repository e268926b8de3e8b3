"""Every route the app really serves (method and path, read from the routers `create_app`
includes) is requested by a test, and every request the tests make to the API names a
route that exists.

The tests' requests are read from their source: HTTP-client calls (`client.post(...)`,
`call("POST", ...)`, `("POST", f"/api/v1/...")` tables, `page.goto(site + "/signin")`),
with f-string parts as placeholders. The dashboard's form posts are made by Chromium
clicking buttons and loading frames, so for those the form in the template that posts
there (method and action), or the frame that loads it, stands in for the request; every
form and frame must name a real route too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from fastapi.routing import APIRoute

from mailramp.config import Settings
from mailramp.web.app import ROUTERS, create_app

TESTS = Path(__file__).resolve().parents[1]
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "mailramp" / "web" / "templates"
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"}
HOLE = "\0"  # an f-string's {expression}, or a template's {{ expression }}
DELIBERATELY_UNKNOWN = "/api/v1/nothing-here"  # the one route tests call to see a 404
# A method the path does not take, called to see the 405 and its Allow header.
DELIBERATELY_REFUSED = {("DELETE", "/api/v1/campaigns")}
# Any served path answers these (web/methods.py): HEAD where GET is served, OPTIONS always.
ANY_PATH = {"HEAD": "GET", "OPTIONS": None}


def real_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    served = [route for router in ROUTERS for route in router.routes]
    served += list(app.routes)  # /healthz and /metrics are the app's own
    return {
        (method, route.path)
        for route in served
        if isinstance(route, APIRoute)
        for method in route.methods
        if method != "HEAD"
    }


def _text(node: ast.AST) -> str | None:
    """The path an expression spells, holes for what it computes; None if it spells none."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        right = _text(node.right)
        return None if right is None else (_text(node.left) or HOLE) + right
    return None


def _path(node: ast.AST) -> str | None:
    text = _text(node)
    if text is None:
        return None
    text = re.sub(rf"^({HOLE}|https?://[^/]+)", "", text.split("?")[0])
    return text if text.startswith("/") else None


def requests_in(tree: ast.AST) -> Iterator[tuple[str, str]]:
    """(method, path) of every request the test code spells out."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and len(node.elts) >= 2:
            method, target = node.elts[0], node.elts[1]
            path = _path(target)
            if isinstance(method, ast.Constant) and method.value in METHODS and path is not None:
                yield method.value, path
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if name.upper() in METHODS and node.args and (path := _path(node.args[0])):
            yield name.upper(), path
        if name == "goto" and node.args and (path := _path(node.args[0])):
            yield "GET", path
        for method, target in zip(node.args, node.args[1:], strict=False):
            path = _path(target)
            if isinstance(method, ast.Constant) and method.value in METHODS and path is not None:
                yield method.value, path


def requests_in_tests() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for source in TESTS.rglob("*.py"):
        if source.resolve() == Path(__file__).resolve():
            continue  # this file's own examples are no requests
        found.update(requests_in(ast.parse(source.read_text(), filename=str(source))))
    return found


def template_forms() -> set[tuple[str, str]]:
    """The templates' form posts and the frames they load (Chromium requests both)."""
    forms = set()
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<form\b[^>]*>", text):
            method = re.search(r'method="(\w+)"', tag)
            action = re.search(r'action="([^"]*)"', tag)
            if method and action and method.group(1).lower() == "post":
                forms.add(("POST", re.sub(r"\{\{.*?\}\}", HOLE, action.group(1))))
        for tag in re.findall(r"<iframe\b[^>]*>", text):
            source = re.search(r'src="([^"?]*)', tag)
            if source:
                forms.add(("GET", re.sub(r"\{\{.*?\}\}", HOLE, source.group(1))))
    return forms


def _serves(route: tuple[str, str], request: tuple[str, str]) -> bool:
    if request[0] in ANY_PATH and ANY_PATH[request[0]] in (None, route[0]):
        request = (route[0], request[1])
    if route[0] != request[0]:
        return False
    return re.fullmatch(_route_regex(route[1]), request[1]) is not None


def _route_regex(path: str) -> str:
    """A route's path as a regex: each {parameter} matches one segment or one hole."""
    parts = re.split(r"\{[a-z_]+\}", path)
    return f"(?:[^/{HOLE}]+|{HOLE})".join(re.escape(part) for part in parts)


def test_every_route_is_requested_by_a_test() -> None:
    routes = real_routes()
    assert len(routes) >= 65  # the API, the dashboard, tracking, webhooks and health
    requested = requests_in_tests() | template_forms()
    missing = sorted(
        f"{method} {path}"
        for method, path in routes
        if not any(_serves((method, path), request) for request in requested)
    )
    assert missing == [], f"routes no test requests: {missing}"


def test_every_form_and_api_request_names_a_real_route() -> None:
    routes = real_routes()
    api = {
        r
        for r in requests_in_tests()
        if r[1].startswith("/api/v1/")
        and r[1] != DELIBERATELY_UNKNOWN
        and r not in DELIBERATELY_REFUSED
    }
    wrong = sorted(
        f"{method} {path!r}"
        for method, path in api | template_forms()
        if not any(_serves(route, (method, path)) for route in routes)
    )
    assert wrong == []


def test_the_reader_sees_method_and_path() -> None:
    tree = ast.parse(
        'client.post(f"/api/v1/campaigns/{cid}/pause")\n'
        'browser.call("DELETE", f"/api/v1/mailboxes/{mid}")\n'
        'page.goto(site + "/signin")\n'
        'CASES = [("PATCH", f"/api/v1/campaigns/{cid}", {})]\n'
    )
    assert set(requests_in(tree)) == {
        ("POST", f"/api/v1/campaigns/{HOLE}/pause"),
        ("DELETE", f"/api/v1/mailboxes/{HOLE}"),
        ("GET", "/signin"),
        ("PATCH", f"/api/v1/campaigns/{HOLE}"),
    }
    assert _serves(
        ("POST", "/api/v1/campaigns/{campaign_id}/pause"),
        ("POST", f"/api/v1/campaigns/{HOLE}/pause"),
    )
    assert not _serves(
        ("GET", "/api/v1/campaigns/{campaign_id}/pause"),
        ("POST", f"/api/v1/campaigns/{HOLE}/pause"),
    )
    assert not _serves(
        ("POST", "/api/v1/campaigns/{campaign_id}"), ("POST", f"/api/v1/campaigns/{HOLE}/pause")
    )
