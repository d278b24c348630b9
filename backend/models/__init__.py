"""Peewee models: one module per resource, all sharing `BaseModel`."""

from backend.models.auth import AuditEvent, AuthSession, OneTimeToken
from backend.models.base import BaseModel, UTCDateTimeField, utcnow
from backend.models.user import User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "BaseModel",
    "OneTimeToken",
    "UTCDateTimeField",
    "User",
    "utcnow",
]
