"""The `Identity` model: an account at an identity provider, linked to one of our users."""

from __future__ import annotations

from peewee import CharField, ForeignKeyField

from backend.models.base import BaseModel
from backend.models.user import User

PROVIDERS = ("github", "google", "azure", "auth0")


class Identity(BaseModel):
    """A provider's user (`provider`, `provider_user_id`) that signs in as `user`.

    Keyed by the provider's own stable user id, never by email: an address can
    change hands at a provider, its user id does not. A user has at most one
    identity per provider. `email` is what the provider said when it was linked.
    """

    user = ForeignKeyField(User, backref="identities", on_delete="CASCADE")
    user_id: int
    provider = CharField(max_length=16, choices=[(p, p) for p in PROVIDERS])
    provider_user_id = CharField(max_length=255)
    email = CharField(max_length=254, default="")

    class Meta:
        indexes = (
            (("provider", "provider_user_id"), True),
            (("user", "provider"), True),
        )
