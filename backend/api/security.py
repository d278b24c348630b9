"""Authentication for the HTTP layer: JWT setup, the `auth_required` decorator, client info.

Access tokens carry the user id (`sub`) and the device session (`sid`); every
authenticated request checks that session is still active (a Redis lookup),
so revoked sessions stop working at once, and loads the user (a deactivated
or demoted account is seen at once). Every JWT failure answers 401 in the
one error shape.

`authenticate` verifies the request with flask-jwt-extended and records the
caller for `caller()` and `session_id()`. The optimisation layer may install
a faster verifier for access tokens under `FAST_VERIFIER` in
`app.extensions`: it returns the caller when it can vouch for the token,
else None, and then the library decides (so every refusal is the library's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any, ParamSpec, TypeVar

from flask import Flask, Response, current_app, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request
from flask_jwt_extended import (
    JWTManager,
    current_user,
    get_current_user,
    get_jwt,
    verify_jwt_in_request,
)
from flask_jwt_extended.exceptions import RevokedTokenError
from flask_jwt_extended.view_decorators import _decode_jwt_from_request

from backend.api.blueprint import Blueprint
from backend.api.errors import error_response
from backend.errors import PayloadTooLarge
from backend.models import User
from backend.services import sessions
from backend.services.access import require_role
from backend.services.audit import ClientInfo

P = ParamSpec("P")
R = TypeVar("R")
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_OPTIONAL_CALLER = "backend.optional_caller"
_AUTHENTICATED = "backend.authenticated"
FAST_VERIFIER = "backend.fast_verifier"
FAST_CLAIMS = "backend.fast_claims"

jwt = JWTManager()


@dataclass(frozen=True)
class Authenticated:
    """Who sent this request: the active user and the verified claims of its access token."""

    user: User
    claims: dict[str, Any]


def authenticate(*, refresh: bool = False) -> Authenticated:
    """Verify this request's token (access, or refresh if `refresh`) and record the caller.

    Raises flask-jwt-extended's errors (answered 401 in the error shape) for a
    missing, invalid, expired or revoked token or an inactive account.
    """
    authenticated = None if refresh else _fast_verified()
    if authenticated is None:
        verify_jwt_in_request(refresh=refresh)
        authenticated = Authenticated(user=get_current_user(), claims=get_jwt())
    remember_caller(authenticated)
    return authenticated


def access_claims() -> dict[str, Any]:
    """Verify this request's access token and return its claims; load neither session nor user.

    For a caller that checks the session and the user itself, through Redis
    (an event stream's setup must not need the database). Signature, expiry
    and type are checked as flask-jwt-extended checks them, and its errors
    (401 in the error shape) are raised for a missing, invalid or expired
    token. The optimisation layer may install a faster check under
    `FAST_CLAIMS`: the claims when it can vouch for the token, else None.
    """
    fast: Callable[[], dict[str, Any] | None] | None = current_app.extensions.get(FAST_CLAIMS)
    claims = fast() if fast is not None else None
    if claims is None:
        # The library's own verification, without its revocation and user
        # callbacks (both need the database here): the caller checks them.
        claims, _header, _location = _decode_jwt_from_request(
            None, False, skip_revocation_check=True
        )
    if type(claims.get("sid")) is not int:
        raise RevokedTokenError({}, claims)
    return claims


def remember_caller(authenticated: Authenticated) -> None:
    """Record who sent this request, for `caller()` and `session_id()`."""
    request.environ[_AUTHENTICATED] = authenticated


def auth_required(
    blp: Blueprint, *, role: str | None = None, refresh: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Require a valid access token (or refresh token) and, optionally, a role.

    Put it right under `@blp.route` so authentication runs before input
    validation. Documents the bearer requirement in OpenAPI.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            authenticated = authenticate(refresh=refresh)
            if role is not None:
                require_role(authenticated.user, role)
            return view(*args, **kwargs)

        documented: Callable[P, R] = blp.doc(security=BEARER)(guarded)
        return documented

    return decorator


def limit_body(config_key: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Allow this endpoint a larger request body than `MAX_CONTENT_LENGTH` (e.g. uploads)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            request.max_content_length = int(current_app.config[config_key])
            return view(*args, **kwargs)

        return limited

    return decorator


def raw_body(*, max_bytes: int) -> IO[bytes]:
    """Return the request body as a stream of at most `max_bytes` (with or without a length).

    A `Content-Length` over `max_bytes` is refused (413) before anything is read. The
    stream may yield one byte more than `max_bytes`, so that whoever reads it sees a
    body over the limit and refuses it in its own words (a chunked body has no length).
    """
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"This upload URL takes at most {max_bytes} bytes.")
    request.max_content_length = max_bytes + 1
    return request.stream


def _fast_verified() -> Authenticated | None:
    fast: Callable[[], Authenticated | None] | None = current_app.extensions.get(FAST_VERIFIER)
    return fast() if fast is not None else None


def _authenticated() -> Authenticated:
    recorded: Authenticated | None = request.environ.get(_AUTHENTICATED)
    if recorded is None:  # verified by a direct `verify_jwt_in_request()` call
        return Authenticated(user=current_user._get_current_object(), claims=get_jwt())
    return recorded


def caller() -> User:
    """Return the authenticated user of this request."""
    return _authenticated().user


def optional_caller() -> User | None:
    """Return the signed-in user if the request carries a token (a bad token is still 401).

    Checked once per request. Without the token header there is nothing to verify
    (tokens are only read from headers), so nothing is.
    """
    if request.headers.get(current_app.config["JWT_HEADER_NAME"]) is None:
        return None
    # Kept in the request's environ: `g` outlives a request when an app context
    # was already pushed (tests, CLI).
    environ = request.environ
    if _OPTIONAL_CALLER not in environ:
        authenticated = _fast_verified()
        if authenticated is None:
            verify_jwt_in_request(optional=True)
        environ[_OPTIONAL_CALLER] = authenticated.user if authenticated else get_current_user()
    user: User | None = environ[_OPTIONAL_CALLER]
    return user


def session_id() -> int:
    """Return the device session id of this request's token."""
    return int(_authenticated().claims["sid"])


def client_info() -> ClientInfo:
    """Describe where this request came from, for sessions and the audit trail."""
    return ClientInfo(
        ip=request.remote_addr or "",
        user_agent=request.headers.get("User-Agent", "")[:300],
        request_id=g.get("request_id", ""),
    )


def _unauthorized(message: str, error: str = "unauthorized") -> Response:
    return error_response(401, error=error, message=message, headers={"WWW-Authenticate": "Bearer"})


def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    sid = payload.get("sid")
    return not isinstance(sid, int) or not sessions.is_active(sid)


def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
    user = User.get_or_none(User.id == int(payload["sub"]))
    return user if user is not None and user.is_active else None


def _register_loaders() -> None:
    jwt.token_in_blocklist_loader(_is_revoked)
    jwt.user_lookup_loader(_load_user)
    jwt.unauthorized_loader(lambda reason: _unauthorized("Sign in first: " + reason))
    jwt.invalid_token_loader(lambda reason: _unauthorized("Invalid token: " + reason))
    jwt.expired_token_loader(
        lambda _h, _p: _unauthorized("The token has expired.", "token_expired")
    )
    jwt.revoked_token_loader(
        lambda _h, _p: _unauthorized("This session has ended; sign in again.", "token_revoked")
    )
    jwt.user_lookup_error_loader(
        lambda _h, _p: _unauthorized("The account no longer exists or is deactivated.")
    )
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("A fresh sign-in is needed."))
    jwt.token_verification_failed_loader(lambda _h, _p: _unauthorized("Token rejected."))


class ApiSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, built only when a request brings a cookie.

    The API authenticates with bearer tokens and never uses the session; the
    default interface would still build a signing serializer for every request.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Return an empty session at once when there is no cookie header."""
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        """Skip the cookie work for a session nobody touched (the usual case)."""
        if session or session.accessed or session.modified:
            super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Configure flask-jwt-extended from the app's settings and the cookie-less session."""
    app.config.setdefault("JWT_ALGORITHM", "HS256")
    app.config["JWT_DECODE_ALGORITHMS"] = ["HS256"]
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(
        seconds=app.config["ACCESS_TOKEN_TTL_SECONDS"]
    )
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(
        seconds=app.config["REFRESH_TOKEN_TTL_SECONDS"]
    )
    app.config["JWT_TOKEN_LOCATION"] = ["headers"]
    jwt.init_app(app)
    app.session_interface = ApiSessionInterface()


_register_loaders()
