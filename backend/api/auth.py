"""Sign-up, sign-in, tokens, sign-out, device sessions, password reset, email verification."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from flask_jwt_extended import get_jwt
from flask_limiter.util import get_remote_address

from backend.api.blueprint import Blueprint
from backend.api.parsing import loads_exact
from backend.api.security import auth_required, caller, client_info, session_id
from backend.errors import ValidationFailed
from backend.ratelimit import configured, limiter
from backend.schemas.users import (
    EmailSchema,
    LoginSchema,
    LogoutQuerySchema,
    RegisterSchema,
    ResetPasswordSchema,
    SessionSchema,
    TokenPairSchema,
    TokenSchema,
    UserSchema,
)
from backend.services import auth, sessions

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Accounts and sessions.")


def email_key() -> str:
    """Key a limit by the body's `email`, normalised exactly as accounts are.

    So `ivan@example.com` and its full-width or upper-case spellings share one
    limit. An address accounts refuse (look-alike letters) or a body that is
    not JSON shares one key per kind: the view answers it with an error anyway.
    """
    try:
        body = loads_exact(request.get_data(cache=True).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "email:-"
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email:
        return "email:-"
    try:
        return f"email:{auth.normalize_email(email)[:254]}"
    except ValidationFailed:
        return "email:not-ascii"


@blp.route("/register", methods=["POST"])
@blp.alt_response(409, description="`email_taken`: an account with this email exists.")
@limiter.limit(configured("RATELIMIT_REGISTER_PER_IP"), key_func=get_remote_address)
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
def register(payload: dict[str, Any]) -> Any:
    """Create an account.

    A verification link is mailed to the address. 409 `email_taken` if the
    address is already registered.
    """
    return auth.register(**payload, client=client_info())


@blp.route("/login", methods=["POST"])
@limiter.limit(configured("RATELIMIT_LOGIN_PER_IP"), key_func=get_remote_address)
@limiter.limit(configured("RATELIMIT_LOGIN_PER_EMAIL"), key_func=email_key)
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
def login(payload: dict[str, Any]) -> Any:
    """Sign in and open a device session.

    Returns a short-lived access token and a refresh token. 401
    `invalid_credentials` for a wrong email or password.
    """
    return auth.login(**payload, client=client_info())


@blp.route("/refresh", methods=["POST"])
@auth_required(blp, refresh=True)
@blp.response(200, TokenPairSchema)
def refresh() -> Any:
    """Exchange the refresh token (as Bearer) for a new pair.

    The presented refresh token is spent. Presenting a spent one again ends
    the session (401 `refresh_token_reused`).
    """
    return auth.refresh(claims=get_jwt(), client=client_info())


@blp.route("/logout", methods=["POST"])
@auth_required(blp)
@blp.arguments(LogoutQuerySchema, location="query")
@blp.response(204)
def logout(query: dict[str, str]) -> None:
    """Sign out this device (`local`), every other device (`others`) or all (`global`)."""
    auth.logout(user=caller(), session_id=session_id(), scope=query["scope"], client=client_info())


@blp.route("/sessions")
@auth_required(blp)
@blp.response(200, SessionSchema(many=True))
def list_sessions() -> list[dict[str, Any]]:
    """List the caller's signed-in devices; `current` marks this one."""
    current = session_id()
    return [{**s.__data__, "current": s.id == current} for s in sessions.active_for(caller())]


@blp.route("/sessions/<int:session_pk>", methods=["DELETE"])
@auth_required(blp)
@blp.response(204)
def revoke_session(session_pk: int) -> None:
    """Sign out one of the caller's devices."""
    auth.revoke_session(user=caller(), session_id=session_pk, client=client_info())


@blp.route("/password/forgot", methods=["POST"])
@limiter.limit(configured("RATELIMIT_FORGOT_PER_IP"), key_func=get_remote_address)
@limiter.limit(configured("RATELIMIT_FORGOT_PER_EMAIL"), key_func=email_key)
@blp.arguments(EmailSchema)
@blp.response(202)
def forgot_password(payload: dict[str, str]) -> None:
    """Mail a password reset link.

    Answers the same whether or not the address has an account.
    """
    auth.forgot_password(email=payload["email"], client=client_info())


@blp.route("/password/reset", methods=["POST"])
@blp.arguments(ResetPasswordSchema)
@blp.response(204)
def reset_password(payload: dict[str, str]) -> None:
    """Set a new password with a mailed token; every session of the account ends."""
    auth.reset_password(**payload, client=client_info())


@blp.route("/email/verify", methods=["POST"])
@blp.arguments(TokenSchema)
@blp.response(204)
def verify_email(payload: dict[str, str]) -> None:
    """Confirm the email address with the mailed token."""
    auth.verify_email(token=payload["token"], client=client_info())
