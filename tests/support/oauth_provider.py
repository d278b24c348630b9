"""A real local HTTP server standing in for GitHub and three OpenID Connect issuers.

It serves what `backend.services.providers` calls: GitHub's API (`/user`,
`/user/emails`, `POST /applications/{client_id}/token`) and its authorize and
token endpoints under `/github`, and for `google`, `azure` and `auth0` an
issuer under `/oidc/<name>` (discovery, authorize, token, userinfo, jwks)
plus Google's tokeninfo. Tokens are the ones it issued (`issue`): opaque for
GitHub and Google, RS256 JWTs for Azure and Auth0. Switches: a token issued to
another client id, an unverified email, `mode` "slow" (answers after
`slow_seconds`) or "error" (500), `failures` (that many 503s first) and `stop()`
(the port closed).

The fixture `stand_in` starts one per test; `stand_in.settings()` points an
app at it with every provider enabled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jws, jwt
from joserfc.jwk import RSAKey
from werkzeug.datastructures import Authorization
from werkzeug.wrappers import Request, Response

from backend.services import providers
from tests.support.stand_ins import LocalServer, serving

CLIENT_ID = "our-client-id"
CLIENT_SECRET = "our-client-secret"  # noqa: S105
OIDC = ("google", "azure", "auth0")


@functools.cache
def signing_key() -> RSAKey:
    """The issuers' RSA key (made once: making one takes a while)."""
    return RSAKey.generate_key(2048, parameters={"kid": "k1"})


@dataclass
class Account:
    """A user at the provider, and the client id a token was issued to."""

    provider: str
    subject: str
    email: str
    email_verified: bool = True
    client_id: str = CLIENT_ID
    name: str = "Grace Hopper"


@dataclass
class StandIn(LocalServer):
    """The running server: issue tokens, flip switches, stop it."""

    slow_seconds: float = 2.0
    failures: int = 0  # answer this many requests with 503 first
    tokens: dict[str, Account] = field(default_factory=dict)
    codes: dict[str, tuple[Account, str]] = field(default_factory=dict)
    next_login: Account | None = None
    key: RSAKey = field(default_factory=lambda: signing_key())
    calls: list[str] = field(default_factory=list)

    def issuer(self, provider: str) -> str:
        """The issuer URL of an OIDC provider (Auth0's ends with a slash, as Auth0's does)."""
        return f"{self.base}/oidc/{provider}" + ("/" if provider == "auth0" else "")

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """App settings with all four providers enabled and pointing here."""
        config: dict[str, Any] = {
            "OAUTH_GITHUB_API_URL": f"{self.base}/github/api",
            "OAUTH_GITHUB_AUTHORIZE_URL": f"{self.base}/github/login/oauth/authorize",
            "OAUTH_GITHUB_TOKEN_URL": f"{self.base}/github/login/oauth/access_token",
            "OAUTH_GOOGLE_TOKENINFO_URL": f"{self.base}/google/tokeninfo",
            "OAUTH_PROVIDER_TIMEOUT_SECONDS": 0.5,
            "OAUTH_REDIRECT_URIS": ["myapp://signed-in"],
        }
        for provider in ("github", *OIDC):
            config[f"OAUTH_{provider.upper()}_CLIENT_ID"] = CLIENT_ID
            config[f"OAUTH_{provider.upper()}_CLIENT_SECRET"] = CLIENT_SECRET
        for provider in OIDC:
            config[f"OAUTH_{provider.upper()}_ISSUER"] = self.issuer(provider)
        return {**config, **overrides}

    def issue(
        self,
        account: Account,
        *,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """Issue an access token for `account` (a signed JWT for Azure and Auth0, with `claims`)."""
        if account.provider in ("azure", "auth0"):
            claim = "appid" if account.provider == "azure" else "azp"
            payload = {"iss": self.issuer(account.provider), "sub": account.subject,
                       claim: account.client_id, "aud": "api", "exp": int(time.time()) + 600,
                       "jti": secrets.token_hex(8), **(claims or {})}  # fmt: skip
            token = jwt.encode({"alg": "RS256", "kid": "k1", **(header or {})}, payload, self.key,
                               registry=jws.JWSRegistry(strict_check_header=False))  # fmt: skip
        else:
            token = f"{account.provider}-{secrets.token_urlsafe(16)}"
        self.tokens[token] = account
        return token

    # The WSGI app -------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append(f"{request.method} {request.path}")
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        if self.failures > 0:
            self.failures -= 1
            return Response("busy", 503)(environ, start_response)
        response = Response("boom", 500) if self.mode == "error" else self.route(request)
        return response(environ, start_response)

    def route(self, request: Request) -> Response:
        """Answer one request."""
        parts = request.path.strip("/").split("/")
        if parts[0] == "github":
            return self.github(request, "/".join(parts[1:]))
        if parts[0] == "google" and parts[1:] == ["tokeninfo"]:
            return self.tokeninfo(request)
        if parts[0] == "oidc" and len(parts) >= 3 and parts[1] in OIDC:
            return self.oidc(request, parts[1], "/".join(parts[2:]))
        return Response("not found", 404)

    def bearer(self, request: Request, provider: str) -> Account | None:
        """The account of the request's Bearer token, if it is one of `provider`'s."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        account = self.tokens.get(token)
        return account if account is not None and account.provider == provider else None

    def github(self, request: Request, path: str) -> Response:
        """GitHub's API, authorize and token endpoints."""
        if path.startswith("api/applications/") and request.method == "POST":
            return self.github_app_check(request, path.split("/")[2])
        if path in ("api/user", "api/user/emails"):
            account = self.bearer(request, "github")
            if account is None:
                return as_json({"message": "Bad credentials"}, 401)
            if path == "api/user":
                user_id = int(account.subject) if account.subject else None
                return as_json({"id": user_id, "login": "grace", "name": account.name,
                                "email": None})  # fmt: skip
            return as_json([{"email": "old@example.test", "primary": False, "verified": True},
                            {"email": account.email, "primary": True,
                             "verified": account.email_verified}])  # fmt: skip
        return self.login_endpoints(request, "github", path.removeprefix("login/oauth/"))

    def github_app_check(self, request: Request, client_id: str) -> Response:
        """`POST /applications/{client_id}/token`: is this token one of our app's?"""
        auth = request.authorization
        if not isinstance(auth, Authorization) or (auth.username, auth.password) != (
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            return as_json({"message": "Requires authentication"}, 401)
        token = (request.get_json(silent=True) or {}).get("access_token")
        account = self.tokens.get(token or "")
        if account is None or account.provider != "github" or account.client_id != client_id:
            return as_json({"message": "Not Found"}, 404)
        return as_json({"token": token, "user": {"login": "grace"}})

    def tokeninfo(self, request: Request) -> Response:
        """Google's tokeninfo: who the token was issued to."""
        account = self.tokens.get(request.args.get("access_token", ""))
        if account is None or account.provider != "google":
            return as_json({"error": "invalid_token"}, 400)
        return as_json({"aud": account.client_id, "azp": account.client_id,
                        "sub": account.subject, "expires_in": 3500})  # fmt: skip

    def oidc(self, request: Request, provider: str, path: str) -> Response:
        """An OpenID Connect issuer."""
        base = f"{self.base}/oidc/{provider}"
        if path == ".well-known/openid-configuration":
            return as_json({"issuer": self.issuer(provider),
                            "authorization_endpoint": f"{base}/authorize",
                            "token_endpoint": f"{base}/token",
                            "userinfo_endpoint": f"{base}/userinfo",
                            "jwks_uri": f"{base}/jwks"})  # fmt: skip
        if path == "jwks":
            return as_json({"keys": [self.key.as_dict(private=False)]})
        if path == "userinfo":
            account = self.bearer(request, provider)
            if account is None:
                return as_json({"error": "invalid_token"}, 401)
            return as_json({"sub": account.subject, "email": account.email, "name": account.name,
                            "email_verified": account.email_verified})  # fmt: skip
        return self.login_endpoints(request, provider, path)

    def login_endpoints(self, request: Request, provider: str, path: str) -> Response:
        """The authorize endpoint (signs `next_login` in at once) and the token endpoint."""
        if path == "authorize" and self.next_login is not None:
            code = secrets.token_urlsafe(12)
            self.codes[code] = (self.next_login, request.args["redirect_uri"])
            query = urlencode({"code": code, "state": request.args["state"]})
            location = f"{request.args['redirect_uri']}?{query}"
            return Response("", 302, headers={"Location": location})
        if path in ("token", "access_token") and request.method == "POST":
            return self.token_endpoint(request)
        return Response("not found", 404)

    def token_endpoint(self, request: Request) -> Response:
        """Trade a code (once) for an access token, for our client id and secret only."""
        form, auth = request.form, request.authorization
        sent = (
            (auth.username, auth.password)
            if auth
            else (form.get("client_id"), form.get("client_secret"))
        )
        if sent != (CLIENT_ID, CLIENT_SECRET):  # in the body (ours, Flet's) or as basic auth
            return as_json({"error": "invalid_client"}, 401)
        found = self.codes.pop(form.get("code", ""), None)
        if found is None or found[1] != form.get("redirect_uri"):
            return as_json({"error": "bad_verification_code"})  # GitHub answers 200 so
        return as_json({"access_token": self.issue(found[0]), "token_type": "bearer"})


def as_json(body: Any, status: int = 200) -> Response:
    """A JSON response."""
    return Response(json.dumps(body), status, content_type="application/json")


@contextlib.contextmanager
def running_stand_in() -> Iterator[StandIn]:
    """Serve a stand-in on a free port of 127.0.0.1 until the block ends."""
    with serving(StandIn(), 0) as fake:
        yield fake


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    """A running stand-in for the providers, stopped after the test."""
    with running_stand_in() as fake:
        providers.forget_cached()
        yield fake
