"""Authentication for the HTTP layer: JWT setup, the `auth_required` decorator, client info.

Access tokens carry the user id (`sub`) and the device session (`sid`); every
authenticated request checks that session is still active (a Redis lookup),
so revoked sessions stop working at once. Every JWT failure answers 401 in
the one error shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import (
    JWTManager,
    current_user,
    get_current_user,
    get_jwt,
    verify_jwt_in_request,
)
from flask_smorest import Blueprint

from backend.api.errors import error_response
from backend.models import User
from backend.services import sessions
from backend.services.access import require_role
from backend.services.audit import ClientInfo

P = ParamSpec("P")
R = TypeVar("R")
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

jwt = JWTManager()


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
            verify_jwt_in_request(refresh=refresh)
            if role is not None:
                require_role(current_user, role)
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


def caller() -> User:
    """Return the authenticated user of this request."""
    user: User = current_user._get_current_object()
    return user


def optional_caller() -> User | None:
    """Return the signed-in user if the request carries a token (a bad token is still 401)."""
    verify_jwt_in_request(optional=True)
    user: User | None = get_current_user()
    return user


def session_id() -> int:
    """Return the device session id of this request's token."""
    return int(get_jwt()["sid"])


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


def init_app(app: Flask) -> None:
    """Configure flask-jwt-extended from the app's settings."""
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


_register_loaders()
