"""Password hashing (argon2id), verification with rehash, and the password policy."""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.errors import ValidationFailed
from backend.models.user import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a failed login costs the
# same time whether or not the account exists.
_DUMMY_HASH = _hasher.hash("dummy password that never matches anything")


def hash_password(password: str) -> str:
    """Return an argon2id hash of `password` with the current parameters."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Return whether `password` matches; with no hash (None, empty), burn the time and fail."""
    if not password_hash:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        return False
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Return whether the hash was made with parameters other than the current ones."""
    return bool(_hasher.check_needs_rehash(password_hash))


def check_policy(password: str, *, email: str) -> None:
    """Raise `ValidationFailed` (field `password`) unless the password is acceptable.

    At least 10 characters, at most 256, and not the email address (or its
    local part).
    """
    problem = None
    if len(password) < MIN_PASSWORD_LENGTH:
        problem = f"Password must be at least {MIN_PASSWORD_LENGTH} characters."
    elif len(password) > MAX_PASSWORD_LENGTH:
        problem = f"Password must be at most {MAX_PASSWORD_LENGTH} characters."
    elif password.strip().casefold() in {email.casefold(), email.split("@")[0].casefold()}:
        problem = "Password must not be your email address."
    if problem:
        raise ValidationFailed(problem, errors={"json": {"password": [problem]}})
