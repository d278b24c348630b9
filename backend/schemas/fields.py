"""Fields shared by the schema families."""

from __future__ import annotations

from typing import Any

from marshmallow import fields


class JsonBoolean(fields.Boolean):
    """A JSON `true` or `false`, nothing else.

    marshmallow's `Boolean` also takes `1`, `0`, `"yes"` and the like, and
    `truthy={True}` does not help: `1 == True` in Python, so `1 in {True}`.
    The document says `boolean`, so only a boolean is accepted.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
