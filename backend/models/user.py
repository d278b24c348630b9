"""The `User` model: an account that signs in with email and password."""

from __future__ import annotations

from peewee import BooleanField, CharField

from backend.models.base import BaseModel

ROLES = ("user", "admin")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


class User(BaseModel):
    """An account. `email` is stored lower-cased, so uniqueness is case-insensitive."""

    email = CharField(max_length=254, unique=True)
    password_hash = CharField(max_length=255)
    full_name = CharField(max_length=200, default="")
    role = CharField(max_length=16, default="user", choices=[(r, r) for r in ROLES])
    is_active = BooleanField(default=True)
    email_verified = BooleanField(default=False)
