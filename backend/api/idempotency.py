"""`Idempotency-Key` support for POST endpoints that create money-like state.

The first response to a key is stored with a hash of the request; a retry
with the same key and body gets the same status and body back (with
`Idempotent-Replayed: true`) and creates nothing; the same key with another
body is 422 `idempotency_key_reused`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request

from backend.api.errors import handle_domain_error
from backend.api.parsing import loads_exact
from backend.api.security import caller
from backend.errors import DomainError, ValidationFailed
from backend.services import idempotency

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Visible ASCII, no space at either end (HTTP would strip it): what a UUID or a
# client's own token looks like, and what the OpenAPI document states.
KEY_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"
HEADER_DOC = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "Makes the request safe to retry: the same key within 24 h returns the "
    "first answer.",
    "schema": {"type": "string", "pattern": KEY_PATTERN, "maxLength": MAX_KEY_LENGTH},
}


def request_fingerprint() -> str:
    """Hash the method, path and JSON body (key order and spacing do not matter)."""
    try:
        body = loads_exact(request.get_data(cache=True).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None  # the view's own parsing refuses it
    canonical = json.dumps([request.method, request.path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def current_key() -> str | None:
    """Return the request's `Idempotency-Key`, validated. Raises `ValidationFailed`."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if re.fullmatch(KEY_PATTERN, key) is None:
        raise ValidationFailed(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters.",
            errors={"headers": {HEADER: ["Invalid value."]}},
        )
    return key


def idempotent(view: Callable[..., Response]) -> Callable[..., Response]:
    """Make a POST view honour `Idempotency-Key` (put it under `auth_required`)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        key = current_key()
        if key is None:
            return view(*args, **kwargs)
        claim = idempotency.begin(user=caller(), key=key, request_hash=request_fingerprint())
        if isinstance(claim, idempotency.Replay):
            replay = jsonify(claim.body)
            replay.status_code = claim.status
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = view(*args, **kwargs)
        except DomainError as exc:
            response = handle_domain_error(exc)
        except BaseException:
            idempotency.abandon(claim)
            raise
        idempotency.complete(claim, status=response.status_code, body=response.get_json())
        return response

    return wrapper
