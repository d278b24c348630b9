"""Single-use secrets sent by mail: issued hashed, consumed atomically."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from backend.errors import ValidationFailed
from backend.models import OneTimeToken, User, utcnow

PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose name, not a secret
EMAIL_VERIFY = "email_verify"
LIFETIMES = {PASSWORD_RESET: timedelta(hours=1), EMAIL_VERIFY: timedelta(hours=48)}


def digest(secret: str) -> str:
    """The SHA-256 hex digest under which a secret (token, handle, URL id) is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(*, user: User, purpose: str) -> str:
    """Create a token for `purpose`; return the secret (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    OneTimeToken.create(
        user=user,
        purpose=purpose,
        token_hash=digest(token),
        expires_at=utcnow() + LIFETIMES[purpose],
    )
    return token


def consume(*, token: str, purpose: str) -> User:
    """Spend the token and return its user.

    Raises `ValidationFailed` (`invalid_token`) when it is unknown, expired,
    already used or meant for another purpose. Concurrent uses: only one wins.
    """
    token_hash = digest(token)
    now = utcnow()
    spent = (
        OneTimeToken.update(used_at=now, updated_at=now)
        .where(
            (OneTimeToken.token_hash == token_hash)
            & (OneTimeToken.purpose == purpose)
            & OneTimeToken.used_at.is_null()
            & (OneTimeToken.expires_at > now)
        )
        .execute()
    )
    if spent != 1:
        message = "This link is invalid or has expired; ask for a new one."
        raise ValidationFailed(
            message, error="invalid_token", errors={"json": {"token": [message]}}
        )
    record = OneTimeToken.get(OneTimeToken.token_hash == token_hash)
    return User.get_by_id(record.user_id)


def spend_outstanding(*, user: User, purpose: str) -> int:
    """Spend every unused token of `user` for `purpose`; return how many were spent.

    Called when what the tokens were for is settled another way (a reset, a
    password change, a deactivation), so an older mailed link cannot be used later.
    """
    now = utcnow()
    outstanding = (
        (OneTimeToken.user == user)
        & (OneTimeToken.purpose == purpose)
        & OneTimeToken.used_at.is_null()
    )
    return int(OneTimeToken.update(used_at=now, updated_at=now).where(outstanding).execute())


def purge_spent(*, older_than: timedelta) -> int:
    """Delete one-time tokens used or expired longer ago than `older_than`; return how many."""
    cutoff = utcnow() - older_than
    spent = OneTimeToken.used_at.is_null(False) & (OneTimeToken.used_at < cutoff)
    expired = OneTimeToken.expires_at < cutoff
    return int(OneTimeToken.delete().where(spent | expired).execute())
