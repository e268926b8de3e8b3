"""The browser page the dashboard tests use (tests/web/conftest.py), for the health page."""

from tests.web.conftest import page

__all__ = ["page"]
