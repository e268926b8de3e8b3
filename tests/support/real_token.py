"""Get a refresh token for the real-account provider tests (tests/providers/test_real_accounts.py).

    python -m tests.support.real_token outlook    # or gmail

It reads the operator's app from the usual settings (MAILRAMP_MICROSOFT_CLIENT_ID and
_SECRET, or MAILRAMP_GOOGLE_CLIENT_ID and _SECRET), prints the provider's consent URL,
waits on http://localhost:PORT/callback for the browser to come back (register that
redirect URI in the app, PORT from --port, 8765 by default), redeems the code with PKCE the
way mailramp does and prints the line to export. The token is printed once and stored
nowhere.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from mailramp.config import Settings
from mailramp.kit.clock import utc_now
from mailramp.mailboxes.models import Provider
from mailramp.oauth.clients import OAuthClient, endpoints_from_settings

VARIABLES = {
    Provider.OUTLOOK: "MAILRAMP_TEST_MICROSOFT_REFRESH_TOKEN",
    Provider.GMAIL: "MAILRAMP_TEST_GOOGLE_REFRESH_TOKEN",
}


def wait_for_code(port: int, state: str) -> str:
    """Serve one request on localhost:port and return its `code` (checking `state`)."""
    received: dict[str, list[str]] = {}

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.update(parse_qs(urlparse(self.path).query))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Done: go back to the terminal.\n")

        def log_message(self, *args: object) -> None:
            """Quiet: the query holds the code."""

    with HTTPServer(("127.0.0.1", port), Callback) as server:
        server.handle_request()
    if received.get("state") != [state]:
        raise SystemExit("the callback's state does not match: start again")
    if "code" not in received:
        raise SystemExit(f"the provider refused: {received.get('error_description', received)}")
    return received["code"][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("provider", choices=[p.value for p in VARIABLES])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--login-hint", help="the test account's address, to skip choosing it")
    arguments = parser.parse_args(argv)
    provider = Provider(arguments.provider)
    client = OAuthClient(endpoints_from_settings(Settings())[provider])
    redirect_uri = f"http://localhost:{arguments.port}/callback"
    state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    url = client.authorize_url(
        redirect_uri=redirect_uri, state=state, verifier=verifier, login_hint=arguments.login_hint
    )
    print(f"Open this URL, sign in with the test account and consent:\n\n{url}\n", flush=True)
    code = wait_for_code(arguments.port, state)
    tokens = asyncio.run(
        client.redeem_code(code, redirect_uri=redirect_uri, verifier=verifier, now=utc_now())
    )
    if tokens.refresh_token is None:
        print("The provider returned no refresh token (offline access not granted).")
        return 1
    print(f"export {VARIABLES[provider]}='{tokens.refresh_token.get_secret_value()}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
