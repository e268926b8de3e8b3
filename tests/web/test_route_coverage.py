"""Every API route has tests through HTTP: its path (with ids as placeholders) appears in
the tests of this folder. A new route without tests fails here."""

from __future__ import annotations

import re
from pathlib import Path

from mailramp.config import Settings
from mailramp.web.app import create_app


def test_every_api_route_is_exercised_by_the_http_tests() -> None:
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    routes = sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    )
    assert len(routes) >= 37
    source = "\n".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    missing = []
    for method, path in routes:
        # "/api/v1/campaigns/{campaign_id}/pause" → a regex matching the f-string in a test.
        pattern = re.escape(path.removeprefix("/api/v1"))
        pattern = re.sub(r"\\\{[a-z_]+\\\}", r"[^/\"']+", pattern) + r"[\"'?]"
        if not re.search(pattern, source):
            missing.append(f"{method} {path}")
    assert missing == [], f"routes without HTTP tests: {missing}"
