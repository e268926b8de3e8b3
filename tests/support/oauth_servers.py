"""Stand-ins for Microsoft's and Google's OAuth servers (and Graph `/me`, Google userinfo)
on loopback: real HTTP, the documented parameters, bodies and errors.

The authorize endpoint plays a user who signs in as the `login_hint` address and consents:
it redirects back with a code bound to the PKCE challenge. The token endpoint checks the
client, the code, the redirect URI and the verifier, and refreshes tokens until they are
revoked (`revoke`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.postgres import free_port

EXPIRES_IN = 3599


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    """A code issued by the authorize endpoint."""

    email: str
    redirect_uri: str
    challenge: str
    scope: str
    used: bool = False


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class OAuthStandIn:
    """What both providers share; subclasses name the paths and phrase the errors."""

    required_scopes: tuple[str, ...] = ()

    def __init__(self, *, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.port = free_port()
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, str] = {}  # token → email
        self.refresh_tokens: dict[str, str] = {}
        self.revoked: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.profiles: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(stand_in.get(self.path, dict(self.headers.items())))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {
                    key: values[0]
                    for key, values in parse_qs(self.rfile.read(length).decode()).items()
                }
                self._answer(stand_in.post(self.path, form, self.headers.get("Content-Type", "")))

            def _answer(self, reply: Reply) -> None:
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.body is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OAuthStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def revoke(self, email: str) -> None:
        """The user revoked the app's access (or changed their password)."""
        with self._lock:
            self.revoked |= {t for t, owner in self.refresh_tokens.items() if owner == email}
            for token in [t for t, owner in self.access_tokens.items() if owner == email]:
                del self.access_tokens[token]

    def latest_access_token(self, email: str) -> str:
        return [t for t, owner in self.access_tokens.items() if owner == email][-1]

    # -- routing (subclasses map paths to these) ------------------------------------------

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        raise NotImplementedError

    def post(self, path: str, form: dict[str, str], content_type: str) -> Reply:
        raise NotImplementedError

    # -- the shared behaviour --------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> Reply:
        if query.get("client_id") != self.client_id:
            return Reply(400, self.error("unauthorized_client", "unknown client_id"))
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return Reply(400, self.error("invalid_request", "redirect_uri is required"))

        def back(**parameters: str) -> Reply:
            if "state" in query:
                parameters["state"] = query["state"]
            return Reply(302, headers={"Location": f"{redirect_uri}?{urlencode(parameters)}"})

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        scopes = set(query.get("scope", "").split())
        if not set(self.required_scopes) <= scopes:
            missing = " ".join(sorted(set(self.required_scopes) - scopes))
            return back(error="invalid_scope", error_description=f"missing: {missing}")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(
                error="invalid_request", error_description="PKCE S256 code_challenge required"
            )
        email = query.get("login_hint")
        if not email:
            return back(error="access_denied", error_description="the user did not sign in")
        if query.get("prompt") == "none":
            return back(error="interaction_required")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.grants[code] = Grant(
                email=email,
                redirect_uri=redirect_uri,
                challenge=query["code_challenge"],
                scope=query["scope"],
            )
        return back(code=code)

    def token(self, form: dict[str, str], content_type: str) -> Reply:
        with self._lock:
            self.token_requests.append(form)
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return Reply(400, self.error("invalid_request", "form body required"))
        if form.get("client_id") != self.client_id:
            return Reply(400, self.error("unauthorized_client", "unknown client_id"))
        if form.get("client_secret") != self.client_secret:
            return Reply(401, self.error("invalid_client", self.bad_secret_description))
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return Reply(400, self.error("unsupported_grant_type", f"{grant_type!r}"))

    def _redeem(self, form: dict[str, str]) -> Reply:
        with self._lock:
            grant = self.grants.get(form.get("code", ""))
            if grant is None or grant.used:
                return Reply(400, self.error("invalid_grant", self.bad_code_description))
            grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return Reply(400, self.error("invalid_grant", "redirect_uri mismatch"))
        verifier = form.get("code_verifier")
        if not verifier or s256(verifier) != grant.challenge:
            return Reply(400, self.error("invalid_grant", self.bad_verifier_description))
        return Reply(200, self.issue(grant.email, grant.scope, with_refresh=True))

    def _refresh(self, form: dict[str, str]) -> Reply:
        token = form.get("refresh_token", "")
        with self._lock:
            email = self.refresh_tokens.get(token)
            if email is None or token in self.revoked:
                return Reply(400, self.error("invalid_grant", self.revoked_description))
        return Reply(200, self.issue(email, " ".join(self.required_scopes), with_refresh=False))

    def issue(self, email: str, scope: str, *, with_refresh: bool) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self.access_tokens[access] = email
            body = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": EXPIRES_IN,
                "scope": scope,
            }
            if with_refresh or self.rotates_refresh_tokens:
                self.refresh_tokens[refresh] = email
                body["refresh_token"] = refresh
        return body

    def bearer_email(self, headers: dict[str, str]) -> str | None:
        authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        return self.access_tokens.get(token) if scheme.lower() == "bearer" else None

    rotates_refresh_tokens = False
    bad_secret_description = "invalid client secret"
    bad_code_description = "invalid code"
    bad_verifier_description = "invalid code verifier"
    revoked_description = "token revoked"

    def error(self, code: str, description: str) -> dict[str, Any]:
        return {"error": code, "error_description": description}


class MicrosoftStandIn(OAuthStandIn):
    """login.microsoftonline.com's v2.0 endpoints and Graph `/me`."""

    required_scopes = ("offline_access", "Mail.Send", "Mail.ReadWrite", "User.Read")
    rotates_refresh_tokens = True
    bad_secret_description = (
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
        "request is the client secret value, not the client secret ID."
    )
    bad_code_description = (
        "AADSTS70008: The provided authorization code or refresh token has expired due to "
        "inactivity. Send a new interactive authorization request for this user and resource."
    )
    bad_verifier_description = (
        "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the "
        "authorization request."
    )
    revoked_description = (
        "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth "
        "token is needed. The user might have changed or reset their password."
    )

    def __init__(self, *, client_id: str, client_secret: str, tenant: str = "common") -> None:
        super().__init__(client_id=client_id, client_secret=client_secret)
        self.tenant = tenant

    @property
    def graph_url(self) -> str:
        return f"{self.origin}/v1.0"

    def error(self, code: str, description: str) -> dict[str, Any]:
        return {
            "error": code,
            "error_description": description,
            "error_codes": [int(n) for n in re.findall(r"^AADSTS(\d+)", description)],
            "timestamp": "2025-01-01 00:00:00Z",
            "trace_id": secrets.token_hex(8),
            "correlation_id": secrets.token_hex(8),
        }

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        parts = urlsplit(path)
        if parts.path == f"/{self.tenant}/oauth2/v2.0/authorize":
            return self.authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
        if parts.path == "/v1.0/me":
            email = self.bearer_email(headers)
            if email is None:
                return Reply(
                    401,
                    {
                        "error": {
                            "code": "InvalidAuthenticationToken",
                            "message": "IDX14100: JWT is not well formed.",
                        }
                    },
                )
            profile = {
                "@odata.context": f"{self.graph_url}/$metadata#users/$entity",
                "id": hashlib.sha256(email.encode()).hexdigest()[:16],
                "displayName": email.split("@")[0].title(),
                "mail": email,
                "userPrincipalName": email,
            } | self.profiles.get(email, {})
            return Reply(200, profile)
        return Reply(404, {"error": {"code": "NotFound", "message": parts.path}})

    def post(self, path: str, form: dict[str, str], content_type: str) -> Reply:
        if urlsplit(path).path == f"/{self.tenant}/oauth2/v2.0/token":
            if form.get("grant_type") in ("authorization_code", "refresh_token") and not form.get(
                "scope"
            ):
                return Reply(
                    400,
                    self.error(
                        "invalid_request",
                        "AADSTS900144: The request body must contain the following "
                        "parameter: 'scope'.",
                    ),
                )
            return self.token(form, content_type)
        return Reply(404, {"error": {"code": "NotFound", "message": path}})


class GoogleStandIn(OAuthStandIn):
    """accounts.google.com's authorize, oauth2.googleapis.com's token and userinfo."""

    required_scopes = (
        "https://www.googleapis.com/auth/gmail.send",
        "https://www.googleapis.com/auth/gmail.modify",
        "openid",
        "email",
    )
    bad_secret_description = "Unauthorized"
    bad_code_description = "Malformed auth code."
    bad_verifier_description = "Invalid code verifier."
    revoked_description = "Token has been expired or revoked."

    @property
    def auth_url(self) -> str:
        return f"{self.origin}/o/oauth2/v2/auth"

    @property
    def token_url(self) -> str:
        return f"{self.origin}/token"

    @property
    def userinfo_url(self) -> str:
        return f"{self.origin}/v1/userinfo"

    def authorize(self, query: dict[str, str]) -> Reply:
        # Without offline access Google issues no refresh token; mailramp must ask for it.
        if query.get("access_type") != "offline" or query.get("prompt") != "consent":
            return Reply(400, self.error("invalid_request", "expected offline + consent"))
        return super().authorize(query)

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        parts = urlsplit(path)
        if parts.path == "/o/oauth2/v2/auth":
            return self.authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
        if parts.path == "/v1/userinfo":
            email = self.bearer_email(headers)
            if email is None:
                return Reply(
                    401,
                    self.error("invalid_request", "Invalid Credentials"),
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            profile = {
                "sub": str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)),
                "name": email.split("@")[0].title(),
                "email": email,
                "email_verified": True,
            } | self.profiles.get(email, {})
            return Reply(200, profile)
        return Reply(404, self.error("not_found", parts.path))

    def post(self, path: str, form: dict[str, str], content_type: str) -> Reply:
        if urlsplit(path).path == "/token":
            return self.token(form, content_type)
        return Reply(404, self.error("not_found", path))
