"""Portable custom fields."""

from __future__ import annotations

import json
from typing import Any

from peewee import TextField

MAX_ID = 2**63 - 1  # the largest id a row can have (a signed 64-bit integer)


class JSONTextField(TextField):
    """JSON stored as text: identical on SQLite and PostgreSQL, queried as a whole."""

    def db_value(self, value: Any) -> Any:
        """Serialise to compact JSON text (None stays NULL)."""
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), default=str)

    def python_value(self, value: Any) -> Any:
        """Parse the stored JSON text."""
        if value is None:
            return None
        return json.loads(value)
