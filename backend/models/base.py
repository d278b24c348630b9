"""The base every model shares: the `db` proxy and `created_at`/`updated_at`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from peewee import AutoField, DateTimeField, Model

from backend.db import db


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTimeField(DateTimeField):
    """A timestamp stored as naive UTC and read back as an aware UTC datetime.

    Storing naive UTC keeps SQLite text and PostgreSQL `timestamp` columns
    comparable and sortable; aware values on the Python side make the API's
    ISO 8601 output carry `+00:00`.
    """

    def db_value(self, value: Any) -> Any:
        """Convert an aware datetime to naive UTC before it is stored."""
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: Any) -> Any:
        """Return stored values as aware UTC datetimes."""
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class BaseModel(Model):
    """Base of every model: bound to `db`, with creation and update timestamps.

    `updated_at` is refreshed by `save()`; bulk `Model.update()` queries must
    set it themselves.
    """

    id = AutoField()
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        database = db
        legacy_table_names = False

    def save(self, *args: Any, **kwargs: Any) -> int:
        """Save the row, stamping `updated_at`."""
        self.updated_at = utcnow()
        return int(super().save(*args, **kwargs))
