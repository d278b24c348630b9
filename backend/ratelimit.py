"""Rate limits (Flask-Limiter on Redis).

Per IP and per email on the auth endpoints, and a per-IP default for every
write. A breach answers 429 in the error shape with `Retry-After`. Behind a
reverse proxy set `PROXY_FIX_X_FOR` so the client's IP is the one limited.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

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


def _on_writes_only(hook: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a limiter hook so that reads skip it (returning the response, if given one)."""

    def writes_only(*args: Any) -> Any:
        if request.method in WRITE_METHODS:
            return hook(*args)
        return args[0] if args else None

    writes_only.limiter_hook = hook  # type: ignore[attr-defined]
    return writes_only


def _is_limiter_hook(function: Any) -> bool:
    owner = getattr(function, "__self__", None)
    if owner is None and isinstance(function, functools.partial):
        owner = next(iter(function.args), None)
    return owner is limiter


def _skip_limiter_on_reads(app: Flask) -> int:
    """Make the limiter's request hooks return at once for reads; return how many were wrapped.

    Reads carry no limits (see `_skip_reads`), but the limiter would still build
    its request context three times per request to find that out.
    """
    wrapped = 0
    for registry in (app.before_request_funcs, app.after_request_funcs,
                     app.teardown_request_funcs):  # fmt: skip
        hooks = registry.get(None, [])
        for index, hook in enumerate(hooks):
            if _is_limiter_hook(hook):
                hooks[index] = _on_writes_only(hook)
                wrapped += 1
    return wrapped


def init_app(app: Flask) -> None:
    """Store the limits in the app's Redis and answer breaches in the error shape."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage_uri(redis_url(app)))
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "ratelimit")
    app.config.setdefault("RATELIMIT_ENABLED", True)
    limiter.init_app(app)
    _skip_limiter_on_reads(app)
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
