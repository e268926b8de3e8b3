"""A stand-in for a Clerk instance's Frontend API on loopback, for the browser test of
Clerk sign-in (real Clerk needs the internet and an account).

It serves what mailramp's sign-in page uses, at the paths Clerk uses:

- `GET /npm/@clerk/clerk-js@5/dist/clerk.browser.js`: a small script with the part of
  ClerkJS's browser API that `/static/clerk.js` calls (`Clerk.load()`, `user`,
  `session.getToken()`, `addListener`, `mountSignIn`, `signOut`), which, like ClerkJS,
  reads its publishable key from the script tag and injects its styles at run time;
- `GET /.well-known/jwks.json`: the instance's public keys;
- `POST /v1/client/sign_ins` and `POST /v1/client/sessions/{id}/tokens`: sign-in and
  short-lived session tokens (RS256, `azp` = the page's origin, as Clerk issues them),
  with CORS as a cross-origin Frontend API answers.

Running the same test against a real Clerk development instance: set
`MAILRAMP_TEST_CLERK_PUBLISHABLE_KEY` and sign in by hand (see README, "Clerk").
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.jwks import RsaKey
from tests.support.postgres import free_port

CLERK_JS = Path(__file__).with_name("static") / "clerk-standin.js"


class ClerkFrontendApi:
    """The stand-in server; `origin` goes in MAILRAMP_CLERK_FRONTEND_API_URL."""

    def __init__(self, key: RsaKey) -> None:
        self.key = key
        self.port = free_port()
        self.sign_ins: list[str] = []
        self.tokens_issued = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                origin = self.headers.get("Origin")
                if origin:
                    self.send_header("Access-Control-Allow-Origin", origin)
                    self.send_header("Access-Control-Allow-Headers", "Content-Type")
                    self.send_header("Access-Control-Allow-Methods", "GET, POST")
                    self.send_header("Vary", "Origin")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: Any) -> None:
                self._send(status, json.dumps(data).encode(), "application/json")

            def do_OPTIONS(self) -> None:
                self._send(204, b"", "text/plain")

            def do_GET(self) -> None:
                if self.path == "/npm/@clerk/clerk-js@5/dist/clerk.browser.js":
                    self._send(200, CLERK_JS.read_bytes(), "application/javascript")
                elif self.path == "/.well-known/jwks.json":
                    self._json(200, {"keys": [stand_in.key.jwk()]})
                else:
                    self._json(404, {"errors": [{"code": "resource_not_found"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/v1/client/sign_ins":
                    identifier = str(body.get("identifier", "")).strip().lower()
                    if "@" not in identifier:
                        self._json(422, {"errors": [{"code": "form_identifier_not_found"}]})
                        return
                    stand_in.sign_ins.append(identifier)
                    user_id = "user_" + hashlib.sha256(identifier.encode()).hexdigest()[:24]
                    self._json(
                        200,
                        {
                            "session_id": "sess_" + user_id[5:],
                            "user_id": user_id,
                            "email": identifier,
                            "name": identifier.split("@")[0].title(),
                        },
                    )
                elif self.path.startswith("/v1/client/sessions/") and self.path.endswith("/tokens"):
                    user_id = "user_" + self.path.split("/")[4].removeprefix("sess_")
                    claims = {k: body.get(k) for k in ("email", "name")}
                    stand_in.tokens_issued += 1
                    jwt = stand_in.key.token(
                        sub=user_id, azp=self.headers.get("Origin"), iss=stand_in.origin, **claims
                    )
                    self._json(200, {"object": "token", "jwt": jwt})
                else:
                    self._json(404, {"errors": [{"code": "resource_not_found"}]})

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ClerkFrontendApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
