"""Tracking tests use the sending tests' world (services with an injected clock and a
real SMTP server)."""

from tests.sending.conftest import smtp_server, world

__all__ = ["smtp_server", "world"]
