"""Rate limits (Flask-Limiter on Redis).

Per IP and per email on the auth endpoints, and a per-IP default for every
write. A breach answers 429 in the error shape with `Retry-After`. Behind a
reverse proxy set `PROXY_FIX_X_FOR` so the client's IP is the one limited.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from backend.api.errors import error_response
from backend.redis_store import redis_url

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _is_read() -> bool:
    return request.method not in WRITE_METHODS


limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[lambda: current_app.config["RATELIMIT_WRITES"]],
    default_limits_exempt_when=_is_read,
    headers_enabled=False,  # Retry-After on 429 only (see `_too_many_requests`)
    swallow_errors=True,  # if Redis is down, serve rather than fail every request
)


def email_key() -> str:
    """Key a limit by the `email` in the JSON body (case- and width-folded)."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"email:{str(email).strip().casefold()[:254]}" if email else "email:-"


def configured(name: str) -> Callable[[], str]:
    """A limit read from the app config at request time (so tests and operators can tune it)."""
    return lambda: str(current_app.config[name])


def storage_uri(url: str) -> str:
    """Translate a redis-py URL for the `limits` library (`unix://` → `redis+unix://`)."""
    return "redis+" + url if url.startswith("unix://") else url


def _too_many_requests(exc: RateLimitExceeded) -> Response:
    current = limiter.current_limit
    wait = int(current.reset_at - time.time()) if current is not None else 60
    return error_response(
        429,
        message=f"Too many requests ({exc.description}); try again later.",
        headers={"Retry-After": str(max(1, wait))},
    )


@limiter.request_filter
def _skip_reads() -> bool:
    # Reads carry no limits here: skip the limiter's work on them entirely.
    return request.method not in WRITE_METHODS


def init_app(app: Flask) -> None:
    """Store the limits in the app's Redis and answer breaches in the error shape."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage_uri(redis_url(app)))
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "ratelimit")
    app.config.setdefault("RATELIMIT_ENABLED", True)
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
