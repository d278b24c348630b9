"""Sign-up, sign-in, token refresh, sign-out, password reset and email verification."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token

from backend.db import db
from backend.errors import Conflict, Unauthorized, ValidationFailed
from backend.models import AuthSession, User
from backend.services import audit, mail, passwords, sessions, tokens
from backend.services.access import get_visible
from backend.services.audit import ClientInfo

LOGOUT_SCOPES = ("local", "others", "global")


@dataclass(frozen=True)
class TokenPair:
    """What a client keeps after signing in or refreshing."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret


def normalize_email(email: str) -> str:
    """Return the canonical form of an address: NFKC, trimmed, lower-case, ASCII only.

    Raises `ValidationFailed` for non-ASCII addresses, which is how look-alike
    letters (Cyrillic "а" for Latin "a") are refused; full-width forms fold
    to ASCII first.
    """
    folded = unicodedata.normalize("NFKC", email).strip().casefold()
    if not folded.isascii():
        message = "Email addresses must use ASCII characters only."
        raise ValidationFailed(message, errors={"json": {"email": [message]}})
    return folded


def find_user(email: str) -> User | None:
    """Return the user with this email (any case or width), if any."""
    return User.get_or_none(User.email == normalize_email(email))


def register(*, email: str, password: str, full_name: str, client: ClientInfo) -> User:
    """Create an account and mail a verification link.

    Raises `ValidationFailed` for a weak password and `Conflict`
    (`email_taken`) when the address is already registered.
    """
    address = normalize_email(email)
    passwords.check_policy(password, email=address)
    with db.atomic():
        if User.select().where(User.email == address).exists():
            raise Conflict("An account with this email already exists.", error="email_taken")
        user = User.create(
            email=address, password_hash=passwords.hash_password(password), full_name=full_name
        )
        _send_token_mail(user, tokens.EMAIL_VERIFY, "verify_email")
        audit.record("user.registered", client=client, actor=user, target=user)
    return user


def login(*, email: str, password: str, device_name: str, client: ClientInfo) -> TokenPair:
    """Check the credentials, open a device session and return its tokens.

    Raises `Unauthorized` (`invalid_credentials`) for an unknown email, a wrong
    password, an account without a password or a deactivated account, taking
    the same time in each case.
    """
    user = find_user(email)
    # An account made through a provider has no password (an empty hash): it
    # burns the same time as an unknown email and fails.
    verified = passwords.verify_password(user.password_hash if user else None, password)
    if user is None or not verified or not user.is_active:
        audit.record("auth.login_failed", client=client, actor=user, data={"email": email[:254]})
        raise Unauthorized("Invalid email or password.", error="invalid_credentials")
    with db.atomic():
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash_password(password)
            user.save()
        session = sessions.create(user=user, device_name=device_name, client=client)
        audit.record("auth.login", client=client, actor=user, data={"session_id": session.id})
    return issue_tokens(user, session, session.current_jti)


def issue_tokens(user: User, session: AuthSession, refresh_jti: str) -> TokenPair:
    """Mint an access token and a refresh token (with id `refresh_jti`) for `session`."""
    config = current_app.config
    identity = str(user.id)
    access = create_access_token(identity, additional_claims={"sid": session.id, "role": user.role})
    refresh = create_refresh_token(
        identity, additional_claims={"sid": session.id, "jti": refresh_jti}
    )
    return TokenPair(access, refresh, int(config["ACCESS_TOKEN_TTL_SECONDS"]), user)


def refresh(*, claims: dict[str, Any], client: ClientInfo) -> TokenPair:
    """Rotate a refresh token: the presented one is spent, a new pair is returned.

    Presenting a spent token revokes its whole session (it was stolen or
    replayed), except within a few seconds of its rotation, when the client
    is taken to be retrying and receives the current pair. Raises
    `Unauthorized` (`token_revoked`, `refresh_token_reused`).
    """
    session = AuthSession.get_or_none(AuthSession.id == claims.get("sid"))
    if session is None or session.revoked_at is not None or str(session.user_id) != claims["sub"]:
        raise Unauthorized("This session has ended; sign in again.", error="token_revoked")
    user = User.get_by_id(session.user_id)
    if not user.is_active:
        raise Unauthorized("This account is deactivated.", error="token_revoked")
    presented = claims["jti"]
    if presented == session.current_jti and sessions.rotate(
        session, presented_jti=presented, client=client
    ):
        session = AuthSession.get_by_id(session.id)
        return issue_tokens(user, session, session.current_jti)
    session = AuthSession.get_by_id(session.id)  # a concurrent refresh may have rotated it
    if sessions.in_grace_window(session, presented) and session.revoked_at is None:
        return issue_tokens(user, session, session.current_jti)
    _end_session(
        session.id, reason="refresh_reuse", action="auth.refresh_reuse_detected", user=user,
        client=client,
    )  # fmt: skip
    raise Unauthorized(
        "This refresh token was already used; the session has been ended for safety.",
        error="refresh_token_reused",
    )


def logout(*, user: User, session_id: int, scope: str, client: ClientInfo) -> list[int]:
    """End this session (`local`), the others (`others`) or all of them (`global`).

    Returns the ids of the sessions ended.
    """
    condition = AuthSession.user == user.id
    if scope == "local":
        condition &= AuthSession.id == session_id
    elif scope == "others":
        condition &= AuthSession.id != session_id
    with db.atomic():
        ended = sessions.revoke_where(condition, reason=f"logout_{scope}")
        audit.record(
            "auth.logout", client=client, actor=user, data={"scope": scope, "sessions": ended}
        )
    return ended


def revoke_session(*, user: User, session_id: int, client: ClientInfo) -> None:
    """End one of the caller's own active sessions. Raises `NotFound` for any other id."""
    target = get_visible(
        AuthSession,
        session_id,
        user=user,
        owner=AuthSession.user,
        admin_sees_all=False,
        only=AuthSession.revoked_at.is_null(),
    )
    _end_session(
        target.id, reason="revoked", action="auth.session_revoked", user=user, client=client
    )


def forgot_password(*, email: str, client: ClientInfo) -> None:
    """Mail a reset link if the account exists and is active; otherwise do nothing, silently."""
    try:
        user = find_user(email)
    except ValidationFailed:
        return
    if user is None or not user.is_active:
        return
    with db.atomic():
        _send_token_mail(user, tokens.PASSWORD_RESET, "password_reset")
        audit.record("auth.password_reset_requested", client=client, actor=user, target=user)


def reset_password(*, token: str, password: str, client: ClientInfo) -> User:
    """Set a new password from a mailed token; end every session and spend every other link.

    Raises `ValidationFailed` for a bad token (`invalid_token`) or a weak password.
    """
    with db.atomic():
        user = tokens.consume(token=token, purpose=tokens.PASSWORD_RESET)
        passwords.check_policy(password, email=user.email)
        user.password_hash = passwords.hash_password(password)
        user.save()
        tokens.spend_outstanding(user=user, purpose=tokens.PASSWORD_RESET)
        sessions.revoke_all_for(user, reason="password_reset")
        audit.record("auth.password_reset", client=client, actor=user, target=user)
    return user


def verify_email(*, token: str, client: ClientInfo) -> User:
    """Mark the address verified from a mailed token.

    Raises `ValidationFailed` (`invalid_token`).
    """
    with db.atomic():
        user = tokens.consume(token=token, purpose=tokens.EMAIL_VERIFY)
        user.email_verified = True
        user.save()
        audit.record("user.email_verified", client=client, actor=user, target=user)
    return user


def _end_session(
    session_id: int, *, reason: str, action: str, user: User, client: ClientInfo
) -> None:
    with db.atomic():
        sessions.revoke_where(AuthSession.id == session_id, reason=reason)
        audit.record(action, client=client, actor=user, target_type="session", target_id=session_id)


def send_verification_mail(user: User) -> None:
    """Mail `user` a link that verifies the address (after the transaction commits)."""
    _send_token_mail(user, tokens.EMAIL_VERIFY, "verify_email")


def _send_token_mail(user: User, purpose: str, template: str) -> None:
    token = tokens.issue(user=user, purpose=purpose)
    hours = int(tokens.LIFETIMES[purpose].total_seconds() // 3600)
    mail.send_mail_after_commit(
        to=user.email,
        template=template,
        context={"full_name": user.full_name or user.email, "token": token, "expires_hours": hours},
    )
