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
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request

from backend.api.errors import handle_domain_error
from backend.api.security import caller
from backend.errors import DomainError, ValidationFailed
from backend.services import idempotency

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def request_fingerprint() -> str:
    """Hash the method, path and JSON body (key order and spacing do not matter)."""
    body = request.get_json(silent=True)
    canonical = json.dumps([request.method, request.path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def current_key() -> str | None:
    """Return the request's `Idempotency-Key`, validated. Raises `ValidationFailed`."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
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
