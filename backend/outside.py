"""The one door for HTTP calls to services outside (identity providers): timeouts, retries.

Every call is bounded by `timeout` seconds for connecting and again for reading.
Only calls that are safe to repeat (GETs, and calls the caller marks
`idempotent`) are retried, at most `RETRIES` more times with a short backoff,
and only when the connection failed or the service answered 502, 503 or 504:
a read that timed out is not repeated, so a hanging service costs one timeout.
Anything that is not an answer raises `Unreachable`; a later issue adds a
circuit breaker here, so callers never use an HTTP client of their own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

RETRIES = 2
BACKOFF_SECONDS = 0.1
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = "flet-backend"


class Unreachable(Exception):
    """The service did not answer usefully: refused, timed out, or a 5xx."""


@dataclass(frozen=True)
class Reply:
    """A service's answer: status, headers and the body's bytes."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """Return the body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    idempotent: bool = False,
    **kwargs: Any,
) -> Reply:
    """Send one request (`kwargs` as for `httpx.request`: headers, params, data, json, auth).

    Returns any answer below 500 (the caller decides what a 4xx means).
    Raises `Unreachable` when there is none: refused, timed out, or a 5xx.
    """
    attempts = 1 + (RETRIES if idempotent or method.upper() == "GET" else 0)
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **kwargs.pop("headers", {})}
    for attempt in range(attempts):
        if attempt:
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        retry, reply = _attempt(method, url, timeout=timeout, headers=headers, **kwargs)
        if reply is not None and reply.status < 500:
            return reply
        if not retry:
            break
    log.warning("outside_unreachable", method=method, url=url.split("?")[0], attempts=attempts)
    raise Unreachable(f"{method} {url.split('?')[0]} did not answer")


def _attempt(method: str, url: str, *, timeout: float, **kwargs: Any) -> tuple[bool, Reply | None]:
    """Return (whether repeating may help, the reply if there was one)."""
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False) as client:
            response = client.request(method, url, **kwargs)
            body = response.read()[:MAX_BODY_BYTES]
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError):
        return True, None
    except httpx.HTTPError as exc:  # a read or write timeout, or worse: do not wait twice
        log.warning("outside_failed", error_type=type(exc).__name__, url=url.split("?")[0])
        return False, None
    reply = Reply(response.status_code, body, dict(response.headers))
    return response.status_code in RETRY_STATUSES, reply
