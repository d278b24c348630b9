"""URL converters: ids in paths are database ids, so they fit a signed 64-bit integer.

A larger number can name no row; matching it anyway would reach the database
with a value it cannot bind (a 500 on SQLite and PostgreSQL alike). With this
converter such a path simply does not match: 404 in the error shape, and the
OpenAPI document states the bounds.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

from backend.models.fields import MAX_ID


class IdConverter(IntegerConverter):
    """`<int:name>` limited to 1 .. 2**63 - 1 (the range of a database id)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
