"""Rate limits (Flask-Limiter on Redis).

Per IP and per email on the auth endpoints (the email keyed as accounts
normalise it: see `backend.api.auth.email_key`), and a per-IP default for every
write. While Redis is unreachable the limits are counted per process (the
limiter's in-memory fallback), so brute force stays throttled. Reads carry no
limits: the limiter's `request_filter` lets them through before it looks any
limit up. A breach raises Flask-Limiter's
`RateLimitExceeded`, which `backend.api.errors` answers with 429 in the error
shape and `Retry-After` (`seconds_until_reset`). Behind a reverse proxy set
`PROXY_FIX_X_FOR` so the client's IP is the one limited.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from backend.redis_sentinel import sentinel_options
from backend.redis_store import RedisTarget, redis_target

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_RETRY_AFTER = 60
STORAGE_TIMEOUT = 5.0  # seconds, for the sentinels and the master, as the app's own client

limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[lambda: current_app.config["RATELIMIT_WRITES"]],
    headers_enabled=False,  # Retry-After on 429 only
    swallow_errors=True,  # a limiter error never fails the request it guards
)


@limiter.request_filter
def is_read() -> bool:
    """Tell the limiter to skip this request entirely: reads carry no limits."""
    return request.method not in WRITE_METHODS


def configured(name: str) -> Callable[[], str]:
    """A limit read from the app config at request time (so tests and operators can tune it)."""
    return lambda: str(current_app.config[name])


def storage_uri(url: str) -> str:
    """Translate a redis-py URL for the `limits` library (`unix://` → `redis+unix://`)."""
    return "redis+" + url if url.startswith("unix://") else url


def storage_for(target: RedisTarget) -> tuple[str, dict[str, object]]:
    """The `limits` storage URI and options for `target`.

    Sentinels: `redis+sentinel://host:port,host:port/master`, with the
    database, passwords and timeouts as options, and every read from the
    master (as with one Redis; a replica may lag).
    """
    if not target.uses_sentinels:
        return storage_uri(str(target.url)), {}
    hosts = ",".join(f"{host}:{port}" for host, port in target.sentinels)
    options: dict[str, object] = {
        "db": target.db,
        "socket_timeout": STORAGE_TIMEOUT,
        "socket_connect_timeout": STORAGE_TIMEOUT,
        "use_replicas": False,
        "sentinel_kwargs": sentinel_options(
            password=target.sentinel_password, timeout=STORAGE_TIMEOUT
        ),
    }
    if target.password:
        options["password"] = target.password
    return f"redis+sentinel://{hosts}/{target.master}", options


def seconds_until_reset() -> int:
    """Return how long (at least 1 s) until the limit this request breached lets it through."""
    current = limiter.current_limit
    wait = int(current.reset_at - time.time()) if current is not None else DEFAULT_RETRY_AFTER
    return max(1, wait)


def init_app(app: Flask) -> None:
    """Store the limits in the app's Redis (`ratelimit` prefix), in memory while it is down."""
    uri, options = storage_for(redis_target(app))
    app.config.setdefault("RATELIMIT_STORAGE_URI", uri)
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", options)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "ratelimit")
    app.config.setdefault("RATELIMIT_ENABLED", True)
    # With Redis unreachable, count in this process until it is back (checked
    # again every few seconds by the limiter) rather than stop limiting.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    # Flask-Limiter adds each app's storage options to the ones it holds: start afresh.
    limiter._storage_options = {}
    limiter.init_app(app)
    # `limiter` is one object for every app a process builds (tests build many), and
    # Flask-Limiter keeps its "storage is down" verdict on it, not per app: a new app
    # starts from its own storage, presumed reachable, and falls back again if it is not.
    limiter._storage_dead = False
