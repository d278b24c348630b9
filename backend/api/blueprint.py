"""The project's flask-smorest `Blueprint`: exact request parsing and bounded pages.

Every view validates through `backend.api.parsing.RequestParser`, a required
JSON body must be sent (an empty one is a 422, as the document says), and a page
number is at most `MAX_PAGE` (a larger one is a 422, and the OpenAPI document
says so): an offset beyond what the database can bind would otherwise be a 500.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flask_smorest
import marshmallow as ma
from flask import request

from backend.api.parsing import RequestParser
from backend.errors import ValidationFailed

MAX_PAGE = 2**31 - 1

View = Callable[..., Any]


def _bounded_page_schema(schema: type[ma.Schema]) -> type[ma.Schema]:
    """Return `schema` (flask-smorest's pagination parameters) with `page <= MAX_PAGE`."""
    page = ma.fields.Integer(
        load_default=schema._declared_fields["page"].load_default,
        validate=ma.validate.Range(min=1, max=MAX_PAGE),
    )
    return type(schema.__name__, (schema,), {"page": page})


def _check_page(view: View) -> View:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        parameters = kwargs.get("pagination_parameters")
        if parameters is not None and parameters.page > MAX_PAGE:
            message = f"Must be between 1 and {MAX_PAGE}."
            raise ValidationFailed(
                "The request is not valid.", errors={"query": {"page": [message]}}
            )
        return view(*args, **kwargs)

    return checked


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's `Blueprint`, reading requests with `RequestParser`, pages bounded."""

    ARGUMENTS_PARSER = RequestParser()
    PAGINATION_ARGUMENTS_PARSER = RequestParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",  # form fields and files, one schema
    }

    def arguments(
        self, schema: Any, *, location: str = "json", required: bool = True, **kwargs: Any
    ) -> Callable[[View], View]:
        """flask-smorest's `arguments`; a required JSON body must be there (else 422)."""
        parsing = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "json" or not required:
            return parsing

        def decorator(view: View) -> View:
            parsed = parsing(view)

            @functools.wraps(parsed)
            def with_body(*args: Any, **kwargs: Any) -> Any:
                if not request.get_data(cache=True):
                    raise ValidationFailed(
                        "This request needs a JSON body.",
                        errors={"json": ["Missing request body."]},
                    )
                return parsed(*args, **kwargs)

            return with_body

        return decorator

    def paginate(self, pager: Any = None, **kwargs: Any) -> Callable[[View], View]:
        """flask-smorest's `paginate`, refusing (and documenting) pages beyond `MAX_PAGE`."""
        paginated = super().paginate(pager, **kwargs)

        def decorator(view: View) -> View:
            wrapper = paginated(_check_page(view))
            parameters = wrapper._apidoc["pagination"]["parameters"]
            parameters["schema"] = _bounded_page_schema(parameters["schema"])
            return wrapper

        return decorator
