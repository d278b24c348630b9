"""How request bodies and query strings are read: exactly, boundedly, unambiguously.

flask-smorest validates every request through webargs' `FlaskParser`; this
subclass (used by `backend.api.blueprint.Blueprint`) tightens what reaches the
schemas:

- JSON numbers are read as `Decimal` (never through a float), so money keeps
  every digit and `1e400` does not become infinity; `NaN`/`Infinity`, integers
  of more than `MAX_INTEGER_DIGITS` digits and documents nested deeper than
  `MAX_JSON_DEPTH` are a 400 "Invalid JSON body", not a 500.
- A query parameter that takes one value and is given twice is a 422 (which of
  the two did the caller mean?), instead of silently taking the first.
- Text with a NUL character (which PostgreSQL cannot store) is a 400 wherever
  it comes: JSON strings and keys, form fields, the path and the query string
  (`refuse_nul_in_url`, run before every request).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import Request, request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.exceptions import BadRequest

MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 64


class _Refused(ValueError):
    """A JSON document that parses but is not accepted (too deep, too long a number)."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _Refused(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _depth(text: str) -> int:
    """Return the deepest nesting of arrays and objects in `text` (outside strings)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def loads_exact(text: str) -> Any:
    """Parse a JSON document with decimal numbers and bounded depth.

    Raises:
        json.JSONDecodeError: The document is malformed, nested deeper than
            `MAX_JSON_DEPTH`, holds a number this API does not accept, or text
            with a NUL character.
    """
    if _depth(text) > MAX_JSON_DEPTH:
        raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", text, 0)
    try:
        document = json.loads(
            text, parse_float=Decimal, parse_int=_integer, parse_constant=_constant
        )
    except _Refused as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from exc
    if _has_nul(document):
        raise json.JSONDecodeError("text with a NUL character", text, 0)
    return document


class RequestParser(FlaskParser):
    """webargs' Flask parser with exact JSON numbers and single-valued query parameters.

    It also reads a `multipart` location: the form fields and the files of one
    multipart body as one mapping, so that an upload's file and its fields are
    one schema and one `multipart/form-data` request body in the document.
    """

    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        try:
            text = raw.decode("utf-8")  # strict: lone surrogates and bad bytes fail
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", "-", exc.start) from exc
        return loads_exact(text) if text else core.missing

    def load_querystring(self, req: Request, schema: ma.Schema) -> Any:
        """Return the query string, refusing a single-valued parameter given twice."""
        repeated = sorted(
            name
            for name, field in _single_valued(schema).items()
            if len(req.args.getlist(name)) > 1
        )
        if repeated:
            raise ma.ValidationError({name: ["Give this parameter once."] for name in repeated})
        return super().load_querystring(req, schema)

    def load_form(self, req: Request, schema: ma.Schema) -> Any:
        """Return the form fields, refusing text with a NUL character."""
        if any("\x00" in key or "\x00" in value for key, value in req.form.items(multi=True)):
            raise BadRequest("Form fields may not contain NUL characters.")
        return super().load_form(req, schema)

    def load_multipart(self, req: Request, schema: ma.Schema) -> Any:
        """Return the form fields and files of a multipart body as one mapping."""
        self.load_form(req, schema)  # refuses NUL characters in the fields
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


def refuse_nul_in_url() -> None:
    """Answer 400 before any view runs when the path or the query string holds a NUL."""
    query = request.args.items(multi=True)
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in query):
        raise BadRequest("The URL may not contain NUL characters.")


def _single_valued(schema: ma.Schema) -> dict[str, ma.fields.Field]:
    return {
        field.data_key or name: field
        for name, field in schema.fields.items()
        if not isinstance(field, ma.fields.List | ma.fields.Tuple)
    }
