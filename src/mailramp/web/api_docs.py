"""The API's interactive documentation (`/docs`), with no CDN: Swagger UI's assets come from
the `fastapi-offline` package and are served by mailramp itself, and the page starts Swagger
UI from a script file of ours, so the strict Content-Security-Policy (scripts and styles
from this server only, no inline code) holds on this page too."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mailramp.web.dashboard import render

router = APIRouter(include_in_schema=False)

ASSETS_PATH = "/static/swagger"
"""Where Swagger UI's script and style are served (mounted before `/static`)."""


def assets_directory() -> Path:
    """Swagger UI's files as the `fastapi-offline` package ships them."""
    return Path(str(files("fastapi_offline") / "static"))


@router.get("/docs")
async def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI on this server's OpenAPI document."""
    return render(request, "api_docs.html", assets=ASSETS_PATH, spec="/openapi.json")
