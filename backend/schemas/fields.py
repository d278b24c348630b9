"""Fields shared by the schema families."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields

CENT = Decimal("0.01")


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


MONEY_PATTERN = r"^[0-9]+(\.[0-9]{1,2})?$"
# What the OpenAPI document says of every amount (apispec reads `oneOf` from the
# metadata; `backend.api` registers `Money` with no type of its own).
MONEY_DOC = {
    "oneOf": [
        {"type": "string", "pattern": MONEY_PATTERN},
        {"type": "number", "minimum": 0, "multipleOf": 0.01},
    ],
    "description": 'An amount: a decimal string (sent as `"19.99"`) or, on input, an '
    "exact JSON number; never rounded.",
    "example": "19.99",
}


class Money(fields.Decimal):
    """An amount: a decimal string with two places on output ("10.00").

    Input is a decimal string matching `pattern` or a JSON number (read
    exactly, see `backend.api.parsing`); it is never rounded.
    """

    def __init__(self, *args: Any, pattern: str = MONEY_PATTERN, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pattern = re.compile(pattern)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        number = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(value, str) and not self.pattern.fullmatch(value):
            self._validate(number)  # the specific reason first: sign, places, range
            raise ValidationError("Write the amount as plain digits, e.g. 19.99.")
        return number

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is not None:
            value = Decimal(value).quantize(CENT)
        return super()._serialize(value, attr, obj, **kwargs)
