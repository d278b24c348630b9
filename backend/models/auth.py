"""Models behind authentication: device sessions, one-time tokens and the audit trail."""

from __future__ import annotations

from peewee import CharField, ForeignKeyField, IntegerField

from backend.models.base import BaseModel, UTCDateTimeField, utcnow
from backend.models.fields import JSONTextField
from backend.models.user import User


class AuthSession(BaseModel):
    """One signed-in device: a family of rotating refresh tokens.

    `current_jti` is the only refresh token of the family that may be used;
    `previous_jti` is the one it replaced at `rotated_at` (accepted again for
    a short grace window, for clients that retried a refresh). Any other
    token of the family is spent: presenting one revokes the session.
    """

    user = ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    user_id: int
    device_name = CharField(max_length=100, default="")
    user_agent = CharField(max_length=300, default="")
    ip = CharField(max_length=64, default="")
    last_seen_at = UTCDateTimeField(default=utcnow)
    current_jti = CharField(max_length=64, index=True)
    previous_jti = CharField(max_length=64, null=True)
    rotated_at = UTCDateTimeField(null=True)
    rotations = IntegerField(default=0)
    revoked_at = UTCDateTimeField(null=True)
    revoked_reason = CharField(max_length=32, null=True)


class OneTimeToken(BaseModel):
    """A single-use secret sent by mail (password reset, email verification).

    Only its SHA-256 is stored; `used_at` is set once, atomically.
    """

    user = ForeignKeyField(User, backref="one_time_tokens", on_delete="CASCADE")
    user_id: int
    purpose = CharField(max_length=32)
    token_hash = CharField(max_length=64, unique=True)
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)


class AuditEvent(BaseModel):
    """Who did what to which object, from where: append-only."""

    actor = ForeignKeyField(User, null=True, backref="audit_events", on_delete="SET NULL")
    actor_id: int | None
    action = CharField(max_length=64, index=True)
    target_type = CharField(max_length=32, null=True)
    target_id = CharField(max_length=64, null=True)
    ip = CharField(max_length=64, default="")
    request_id = CharField(max_length=128, default="")
    data = JSONTextField(default=dict)

    class Meta:
        indexes = ((("target_type", "target_id"), False),)  # GET /audit?target=order:12
