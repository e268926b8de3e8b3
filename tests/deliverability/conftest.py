"""Fixtures the deliverability tests share with others: the dashboard's browser page
(tests/web/conftest.py) and the sending world, a real SMTP server and the services on an
injected clock (tests/sending/conftest.py)."""

from tests.sending.conftest import smtp_server, world
from tests.web.conftest import page

__all__ = ["page", "smtp_server", "world"]
