"""The one place errors become HTTP responses, all in the one error shape.

`{"code": 409, "status": "Conflict", "error": "insufficient_stock",
"message": "...", "errors": {...}}` for domain exceptions, Werkzeug's own
HTTP errors (404, 405, 413, ...), flask-smorest's 422, Flask-Limiter's 429
and unhandled exceptions (500, logged with the traceback, answered without
internals).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import peewee
import redis
import structlog
from flask import Flask, Response, jsonify
from flask_limiter import RateLimitExceeded
from flask_smorest.error_handler import ErrorSchema as SmorestErrorSchema
from marshmallow import fields
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException, InternalServerError

from backend.errors import DomainError
from backend.ratelimit import seconds_until_reset
from backend.storage import StorageUnavailable

log = structlog.get_logger(__name__)

SLUGS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    428: "precondition_required",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ErrorSchema(SmorestErrorSchema):
    """The one error shape (documentation only): flask-smorest's plus a slug."""

    error = fields.String(
        metadata={"description": "Stable machine-readable slug", "example": "not_found"}
    )


def error_body(
    code: int, *, error: str | None = None, message: str | None = None, errors: Any = None
) -> dict[str, Any]:
    """Build the error shape for `code`; `error` defaults to the status's slug."""
    status = HTTPStatus(code)
    body: dict[str, Any] = {
        "code": code,
        "status": status.phrase,
        "error": error or SLUGS.get(code, status.phrase.lower().replace(" ", "_")),
        "message": message or status.description,
    }
    if errors:
        body["errors"] = errors
    return body


def error_response(
    code: int,
    *,
    error: str | None = None,
    message: str | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Return a JSON response in the error shape."""
    response = jsonify(error_body(code, error=error, message=message, errors=errors))
    response.status_code = code
    response.headers.update(headers or {})
    return response


def handle_http_exception(exc: HTTPException) -> Response:
    """Render a Werkzeug or flask-smorest HTTP error in the error shape."""
    code = exc.code or 500
    data = getattr(exc, "data", None) or {}
    headers = dict(data.get("headers") or {})
    if code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    message = data.get("message") or (exc.description if code < 500 else None)
    errors = data.get("errors") or data.get("messages")
    if code == 422 and errors and not data.get("message"):
        message = "The request is invalid; see errors for each field."
    return error_response(
        code, error=data.get("error"), message=message, errors=errors, headers=headers
    )


def handle_rate_limited(exc: RateLimitExceeded) -> Response:
    """Answer a breached rate limit: 429 with `Retry-After`, the seconds until it resets."""
    return error_response(
        429,
        message=f"Too many requests ({exc.description}); try again later.",
        headers={"Retry-After": str(seconds_until_reset())},
    )


def handle_domain_error(exc: DomainError) -> Response:
    """Render a domain exception raised by a service."""
    return error_response(
        exc.status_code,
        error=exc.error,
        message=exc.message,
        errors=exc.errors,
        headers=exc.headers,
    )


UNAVAILABLE_ERRORS = (
    MaxConnectionsExceeded,  # the database pool ran dry: busy, not broken
    peewee.OperationalError,
    peewee.InterfaceError,
    redis.ConnectionError,  # with sentinels: also no master elected yet, or it was demoted
    redis.TimeoutError,
    redis.ReadOnlyError,  # a Redis URL that now names a replica (failed over behind DNS)
    StorageUnavailable,  # the object store (S3) is unreachable or failing
)
RETRY_AFTER_SECONDS = "5"


def handle_unavailable(exc: Exception) -> Response:
    """Answer 503 with `Retry-After` when the database, Redis or the object store is down."""
    log.warning("dependency_unavailable", error_type=type(exc).__name__, error=str(exc))
    return error_response(
        503,
        message="A backing service is unavailable; try again shortly.",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def handle_unexpected(exc: Exception) -> Response:
    """Log an unhandled exception with its traceback; answer 500 without internals."""
    if isinstance(exc, HTTPException) and not isinstance(exc, InternalServerError):
        return handle_http_exception(exc)
    log.error("unhandled_exception", exc_info=exc)
    return error_response(500, message="An unexpected error occurred. It has been logged.")


def init_app(app: Flask) -> None:
    """Register the handlers (after flask-smorest's, so these win)."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
    app.register_error_handler(DomainError, handle_domain_error)
    for exc_type in UNAVAILABLE_ERRORS:
        app.register_error_handler(exc_type, handle_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
