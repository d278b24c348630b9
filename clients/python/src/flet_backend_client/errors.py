"""Exceptions raised by the client, built from the API's one error shape.

Every API error is `{"code", "status", "error", "message", "errors"}`; the
`error` slug (or, failing that, the HTTP status) picks the subclass.
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class FletBackendError(Exception):
    """Base class of everything this package raises."""


class ConnectionFailed(FletBackendError):
    """The server could not be reached (refused, reset, timed out)."""


class ApiError(FletBackendError):
    """The server answered with an error.

    Attributes:
        status: The HTTP status code.
        error: The stable machine slug (`not_found`, `insufficient_stock`, ...).
        message: Human-readable text from the server.
        errors: Details: field errors for 422, `items` for insufficient stock.
        retry_after: Seconds from the `Retry-After` header, when sent.
    """

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        errors: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.errors: dict[str, Any] = errors or {}
        self.retry_after = retry_after


class AuthError(ApiError):
    """401: not signed in, the token was rejected, or the session ended."""


class ForbiddenError(ApiError):
    """403: signed in but not allowed."""


class NotFoundError(ApiError):
    """404: missing, or belongs to someone else."""


class ConflictError(ApiError):
    """409: the request conflicts with the current state."""


class InsufficientStockError(ConflictError):
    """409 `insufficient_stock`: `shortages` lists each product that is short."""

    @property
    def shortages(self) -> list[dict[str, Any]]:
        """`[{product_id, requested, available}, ...]` from the error details."""
        items = self.errors.get("items", [])
        return list(items) if isinstance(items, list) else []


class PreconditionFailedError(ApiError):
    """412 (stale `If-Match`) or 428 (`If-Match` missing)."""


class ValidationError(ApiError):
    """422: the input was refused; `errors` maps fields to messages."""


class RateLimitedError(ApiError):
    """429: too many requests; wait `retry_after` seconds."""


class ExpiredError(ApiError):
    """410: what was asked for is gone (a finished or expired sign-in, a spent upload URL)."""


class ServiceUnavailableError(ApiError):
    """503: the database or Redis is unreachable; retry later."""


BY_SLUG: dict[str, type[ApiError]] = {
    "insufficient_stock": InsufficientStockError,
}
BY_STATUS: dict[int, type[ApiError]] = {
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: ValidationError,
    410: ExpiredError,
    428: PreconditionFailedError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds of a `Retry-After` header (numeric form only)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """Build the right `ApiError` subclass from an error response (read already)."""
    try:
        body: Any = json.loads(response.content or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    status = response.status_code
    slug = str(body.get("error") or body.get("status") or f"http_{status}")
    message = str(body.get("message") or response.reason_phrase or "")
    errors = body.get("errors")
    cls = BY_SLUG.get(slug) or BY_STATUS.get(status, ApiError)
    return cls(
        status,
        slug,
        message,
        errors if isinstance(errors, dict) else None,
        parse_retry_after(response.headers.get("Retry-After")),
    )
