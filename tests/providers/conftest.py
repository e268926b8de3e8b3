"""The stand-ins the provider tests run against, and `api`: each of the two APIs in turn
for the tests both must pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailramp.providers.gmail import GmailClient, GmailProvider, GmailThrottledError
from mailramp.providers.graph import GraphClient, GraphProvider, GraphThrottledError
from tests.providers.apis import Api
from tests.support.gmail_server import GmailServer
from tests.support.graph_server import GraphServer
from tests.support.provider_mail import GOOGLE


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    server = GraphServer(tokens={"good"}).start()
    yield server
    server.stop()


@pytest.fixture
def gmail() -> Iterator[GmailServer]:
    server = GmailServer(tokens={"good"}).start()
    yield server
    server.stop()


@pytest.fixture
def graph_api(graph: GraphServer) -> Api:
    return Api(
        name="Graph",
        server=graph,
        provider_class=GraphProvider,
        client_class=GraphClient,
        throttled_error=GraphThrottledError,
        sender="ann@contoso.com",
        inbox_path="/mailFolders/Inbox/messages",
        no_read_scope="ErrorAccessDenied",
        refused_recipient="ErrorInvalidRecipients",
    )


@pytest.fixture
def gmail_api(gmail: GmailServer) -> Api:
    return Api(
        name="Gmail",
        server=gmail,
        provider_class=GmailProvider,
        client_class=GmailClient,
        throttled_error=GmailThrottledError,
        sender="ann@example.net",
        inbox_path="/users/me/messages",
        no_read_scope="insufficientPermissions",
        refused_recipient="Invalid To header",
        reporter=GOOGLE,
        options={"backoff_seconds": 0.3},
    )


@pytest.fixture(params=["graph", "gmail"])
def api(request: pytest.FixtureRequest) -> Api:
    """Graph, then Gmail (a test parametrised with `indirect=["api"]` names which)."""
    chosen: Api = request.getfixturevalue(f"{request.param}_api")
    return chosen
