"""Peewee models: one module per resource, all sharing `BaseModel`."""

from backend.models.base import BaseModel, UTCDateTimeField, utcnow
from backend.models.user import User

__all__ = ["BaseModel", "UTCDateTimeField", "User", "utcnow"]
