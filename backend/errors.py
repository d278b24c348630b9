"""Domain exceptions: what services raise instead of touching HTTP.

Each carries a stable machine slug (`error`), a human message and optional
field errors. `backend.api.errors` maps them, and every HTTP error, to the
one error shape.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a service may raise on purpose."""

    status_code: ClassVar[int] = 400
    slug: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Describe the failure; `error` overrides the class's slug."""
        super().__init__(message)
        self.message = message
        self.error = error or self.slug
        self.errors = errors
        self.headers = headers or {}


class ValidationFailed(DomainError):
    """Input passed the schema but breaks a rule about its values (422)."""

    status_code = 422
    slug = "validation_error"


class Unauthorized(DomainError):
    """No valid credentials (401)."""

    status_code = 401
    slug = "unauthorized"


class Forbidden(DomainError):
    """Authenticated but not allowed (403)."""

    status_code = 403
    slug = "forbidden"


class NotFound(DomainError):
    """Does not exist, or belongs to someone else (404)."""

    status_code = 404
    slug = "not_found"


class Conflict(DomainError):
    """Clashes with the current state, e.g. a duplicate (409)."""

    status_code = 409
    slug = "conflict"


class BusinessRuleViolation(Conflict):
    """A business rule forbids this now (409), e.g. `insufficient_stock`."""

    slug = "business_rule_violation"


class Gone(DomainError):
    """Existed once, but has expired or been used up (410): a sign-in handle, an upload URL."""

    status_code = 410
    slug = "gone"


class PreconditionFailed(DomainError):
    """A conditional request's precondition no longer holds (412)."""

    status_code = 412
    slug = "precondition_failed"


class PayloadTooLarge(DomainError):
    """The request body or file is larger than allowed (413)."""

    status_code = 413
    slug = "payload_too_large"


class UnsupportedMediaType(DomainError):
    """The content's type is not accepted, or is not what it claims to be (415)."""

    status_code = 415
    slug = "unsupported_media_type"


class RangeNotSatisfiable(DomainError):
    """The requested byte range lies outside the content (416)."""

    status_code = 416
    slug = "range_not_satisfiable"


class RateLimited(DomainError):
    """Too many requests; `Retry-After` says when to try again (429)."""

    status_code = 429
    slug = "rate_limited"


class ServiceUnavailable(DomainError):
    """A dependency (database, Redis, an identity provider) is unreachable (503)."""

    status_code = 503
    slug = "service_unavailable"
