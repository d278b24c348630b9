"""Profiles, password changes and user administration."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from backend.db import db, lock_for_update
from backend.errors import BusinessRuleViolation, NotFound, ValidationFailed
from backend.models import User
from backend.services import audit, passwords, realtime, roles, sessions, tokens
from backend.services.access import require_role
from backend.services.audit import ClientInfo
from backend.services.auth import normalize_email

ROLES = ("user", "admin")


def update_profile(*, user: User, full_name: str) -> User:
    """Change the caller's display name."""
    user.full_name = full_name
    user.save()
    return user


def change_password(
    *, user: User, current_password: str, password: str, session_id: int, client: ClientInfo
) -> None:
    """Replace the password after checking the current one; end every other session.

    Reset links mailed before the change can no longer be used.

    Raises `ValidationFailed` (`invalid_password`) when `current_password` is
    wrong, or for a weak new password.
    """
    if not passwords.verify_password(user.password_hash, current_password):
        message = "The current password is not correct."
        raise ValidationFailed(
            message, error="invalid_password", errors={"json": {"current_password": [message]}}
        )
    passwords.check_policy(password, email=user.email)
    with db.atomic():
        user.password_hash = passwords.hash_password(password)
        user.save()
        tokens.spend_outstanding(user=user, purpose=tokens.PASSWORD_RESET)
        sessions.revoke_all_for(user, reason="password_changed", keep=session_id)
        audit.record("user.password_changed", client=client, actor=user, target=user)


def list_users(*, actor: User, page: int, page_size: int) -> tuple[list[User], int]:
    """Return one page of users (oldest first) and the total. Admins only."""
    require_role(actor, "admin")
    query = User.select().order_by(User.id)
    return list(query.paginate(page, page_size)), query.count()


def get_user(*, actor: User, user_id: int) -> User:
    """Return a user by id. Admins only; raises `NotFound`."""
    require_role(actor, "admin")
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found.")
    return user


def update_user(
    *,
    actor: User,
    user_id: int,
    role: str | None = None,
    is_active: bool | None = None,
    client: ClientInfo,
) -> User:
    """Change a user's role or active flag. Admins only.

    Deactivating ends all of the user's sessions and spends their reset links. Raises
    `BusinessRuleViolation` (`last_admin`) rather than leave no active admin.
    """
    require_role(actor, "admin")
    with db.atomic():
        admins = list(lock_for_update(User.select().where(User.role == "admin")))
        user = get_user(actor=actor, user_id=user_id)
        changes = {k: v for k, v in (("role", role), ("is_active", is_active)) if v is not None}
        loses_admin = (
            user.role == "admin"
            and user.is_active
            and (changes.get("role", "admin") != "admin" or changes.get("is_active") is False)
        )
        if loses_admin and sum(a.is_active for a in admins) <= 1:
            raise BusinessRuleViolation(
                "This is the last active admin; promote another admin first.", error="last_admin"
            )
        _apply_changes(user, changes, actor=actor, client=client)
    return user


def _apply_changes(
    user: User, changes: Mapping[str, object], *, actor: User, client: ClientInfo
) -> None:
    before = {name: getattr(user, name) for name in changes}
    for name, value in changes.items():
        setattr(user, name, value)
    user.save()
    if changes.get("is_active") is False and before.get("is_active"):
        sessions.revoke_all_for(user, reason="deactivated")
        tokens.spend_outstanding(user=user, purpose=tokens.PASSWORD_RESET)
    if before.get("role", user.role) != user.role or "is_active" in changes:
        roles.remember_after_commit(user)
    if before.get("role", user.role) != user.role:
        realtime.reauthorize_streams(user)
    for name, value in changes.items():
        if before[name] != value:
            action = "user.role_changed" if name == "role" else "user.active_changed"
            data = {"from": before[name], "to": value}
            audit.record(action, client=client, actor=actor, target=user, data=data)


def ensure_account(*, email: str, password: str | None, role: str) -> tuple[User, bool]:
    """Create an active account with `role`, or give an existing one that role (idempotent).

    For the CLI (`create-admin`, `seed-demo`): no last-admin check, no audit.
    A given password is checked against the policy and set. Returns the user
    and whether it was created.
    """
    address = normalize_email(email)
    if password is not None:
        passwords.check_policy(password, email=address)
    with db.atomic():
        user = User.get_or_none(User.email == address)
        created = user is None
        if user is None:
            user = User(email=address, email_verified=True)
            password = password or secrets.token_urlsafe(16)
        user.role, user.is_active = role, True
        if password is not None:
            user.password_hash = passwords.hash_password(password)
        user.save()
        roles.remember_after_commit(user)
    return user, created


def get_active_user(user_id: int) -> User | None:
    """Return the user if it exists and is active."""
    user = User.get_or_none(User.id == user_id)
    return user if user is not None and user.is_active else None
