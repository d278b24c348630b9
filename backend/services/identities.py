"""Identities: signing in with a provider's profile, linking and unlinking providers.

An identity is keyed by (provider, the provider's user id), never by email.
A provider's email links to an existing account by itself only when the
provider says the address is verified AND the account verified it with us;
otherwise `Conflict` (`identity_conflict`): sign in to that account, then link.
An account made from a provider has no password (an empty hash, which never
matches) until the reset flow sets one.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from backend.db import db
from backend.errors import Conflict, NotFound, Unauthorized
from backend.models import Identity, User
from backend.services import audit, auth, sessions
from backend.services.audit import ClientInfo
from backend.services.auth import TokenPair
from backend.services.providers import Profile, rejected


@dataclass(frozen=True)
class ProviderTokenPair(TokenPair):
    """A token pair from a provider sign-in; `created` when the account was made now."""

    created: bool = False


def _conflict(message: str) -> Conflict:
    return Conflict(message, error="identity_conflict")


def resolve(*, profile: Profile, client: ClientInfo) -> tuple[User, bool]:
    """Return the user `profile` signs in as, and whether the account was made now.

    Links the identity to an account with the same verified email, or makes a
    new account. Raises `Conflict` (`identity_conflict`) when the email belongs
    to an account it may not be linked to automatically, `Unauthorized` for a
    deactivated account or a profile without an email.
    """
    identity = Identity.get_or_none(
        (Identity.provider == profile.provider) & (Identity.provider_user_id == profile.subject)
    )
    if identity is not None:
        return _active(User.get_by_id(identity.user_id)), False
    if not profile.email:
        raise rejected("The provider shared no email address for this account.")
    try:
        with db.atomic():
            return _link_or_create(profile, client=client)
    except peewee.IntegrityError as exc:  # a concurrent sign-in made it first
        raise _conflict("This sign-in was just linked by another request; try again.") from exc


def _active(user: User) -> User:
    if not user.is_active:
        raise Unauthorized("This account is deactivated.", error="account_deactivated")
    return user


def _link_or_create(profile: Profile, *, client: ClientInfo) -> tuple[User, bool]:
    email = auth.normalize_email(profile.email)
    existing = User.get_or_none(User.email == email)
    if existing is None:
        user = User.create(
            email=email,
            password_hash="",
            full_name=profile.name[:200],
            email_verified=profile.email_verified,
        )
        audit.record(
            "user.registered", client=client, actor=user, target=user,
            data={"provider": profile.provider},
        )  # fmt: skip
        if not profile.email_verified:
            auth.send_verification_mail(user)
        _add(user, profile, client=client)
        return user, True
    if not (profile.email_verified and existing.email_verified):
        raise _conflict(
            "An account with this email exists; sign in to it, then link this provider."
        )
    _active(existing)
    if (
        Identity.select()
        .where((Identity.user == existing.id) & (Identity.provider == profile.provider))
        .exists()
    ):
        raise _conflict("That account is linked to another account at this provider.")
    _add(existing, profile, client=client)
    return existing, False


def _add(user: User, profile: Profile, *, client: ClientInfo) -> Identity:
    identity = Identity.create(
        user=user,
        provider=profile.provider,
        provider_user_id=profile.subject,
        email=profile.email[:254],
    )
    audit.record(
        "identity.linked", client=client, actor=user, target=user,
        data={"provider": profile.provider, "provider_user_id": profile.subject},
    )  # fmt: skip
    return identity


def open_session(
    *, user: User, created: bool, provider: str, device_name: str, client: ClientInfo
) -> ProviderTokenPair:
    """Open a device session for a provider sign-in and return its tokens."""
    _active(User.get_by_id(user.id))
    with db.atomic():
        session = sessions.create(user=user, device_name=device_name, client=client)
        audit.record(
            "auth.oauth_login", client=client, actor=user,
            data={"session_id": session.id, "provider": provider, "created": created},
        )  # fmt: skip
    pair = auth.issue_tokens(user, session, session.current_jti)
    return ProviderTokenPair(
        pair.access_token, pair.refresh_token, pair.expires_in, pair.user, created=created
    )


def list_for(user: User) -> list[Identity]:
    """Return the user's identities, oldest first."""
    return list(Identity.select().where(Identity.user == user.id).order_by(Identity.id))


def link(*, user: User, profile: Profile, client: ClientInfo) -> Identity:
    """Link the provider account of `profile` to `user` (the caller proved both).

    Linking the same provider account again returns it. Raises `Conflict`
    (`identity_conflict`) when it signs in to another account, or `user`
    already has another account at this provider.
    """
    found = Identity.get_or_none(
        (Identity.provider == profile.provider) & (Identity.provider_user_id == profile.subject)
    )
    if found is not None and found.user_id == user.id:
        return found
    if found is not None:
        raise _conflict("This provider account signs in to another account.")
    try:
        with db.atomic():
            if (
                Identity.select()
                .where((Identity.user == user.id) & (Identity.provider == profile.provider))
                .exists()
            ):
                raise _conflict("Another account at this provider is linked; unlink it first.")
            return _add(user, profile, client=client)
    except peewee.IntegrityError as exc:
        raise _conflict("This provider account was just linked elsewhere.") from exc


def unlink(*, user: User, provider: str, client: ClientInfo) -> None:
    """Remove the user's identity at `provider`.

    Raises `NotFound` when there is none, `Conflict` (`last_sign_in_method`)
    when the account would be left with no password and no identity.
    """
    with db.atomic():
        identity = Identity.get_or_none(
            (Identity.user == user.id) & (Identity.provider == provider)
        )
        if identity is None:
            raise NotFound("No identity of this provider is linked.", error="not_found")
        others = Identity.select().where((Identity.user == user.id) & (Identity.id != identity.id))
        if not User.get_by_id(user.id).password_hash and not others.exists():
            raise Conflict(
                "This is the only way to sign in to the account; set a password first.",
                error="last_sign_in_method",
            )
        identity.delete_instance()
        audit.record(
            "identity.unlinked", client=client, actor=user, target=user,
            data={"provider": provider, "provider_user_id": identity.provider_user_id},
        )  # fmt: skip
