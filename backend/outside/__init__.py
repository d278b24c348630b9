"""The one door for HTTP calls to services outside (identity providers, payments).

Every call names its `service` (`"stripe"`, `"oauth_github"`, ...) and is
bounded: `OUTSIDE_CONNECT_TIMEOUT_SECONDS` to connect, `timeout` seconds to
read. Only calls that are safe to repeat (GETs, and calls the caller marks
`idempotent`, say with an idempotency key) are retried, at most `RETRIES`
more times with jittered exponential backoff (tenacity), and only when the
connection failed or the service answered 502, 503 or 504: a read that timed
out is not repeated, so a hanging service costs one timeout.

Each service has a circuit breaker shared by all processes (`breaker`): once
open, calls fail at once with `CircuitOpen` instead of waiting. Anything that
is not an answer raises `Unreachable`, whose `retry_after` says when trying
again makes sense. Calls, failures, latency and breaker states are in
`/metrics`. Callers never use an HTTP client of their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
import structlog
import tenacity
from flask import Flask, current_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from backend import metrics
from backend.outside import breaker
from backend.redis_store import get_redis

log = structlog.get_logger(__name__)

RETRIES = 2
BACKOFF_SECONDS = 0.1
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = "flet-backend"
RETRY_AFTER_SECONDS = 5  # suggested to clients when one call failed but the breaker is closed


class Unreachable(Exception):
    """The service did not answer usefully: refused, timed out, or a 5xx."""

    def __init__(self, message: str, *, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        """Describe the failure; `retry_after`: seconds after which a retry may succeed."""
        super().__init__(message)
        self.retry_after = retry_after


class CircuitOpen(Unreachable):
    """The service failed repeatedly: no call goes out until its cool-down ends."""


class _Retryable(Exception):
    """An attempt failed in a way that repeating may mend (no connection, 502-504)."""


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
    service: str,
    timeout: float,
    idempotent: bool = False,
    **kwargs: Any,
) -> Reply:
    """Send one request to `service` (`kwargs` as for `httpx.request`: headers, params, data...).

    Returns any answer below 500 (the caller decides what a 4xx means).
    Raises `CircuitOpen` without calling when the service's breaker is open,
    and `Unreachable` when there is no answer: refused, timed out, or a 5xx.
    """
    attempts = 1 + (RETRIES if idempotent or method.upper() == "GET" else 0)
    connect = _connect_timeout(timeout)
    limits = httpx.Timeout(timeout, connect=connect)
    permit = breaker.check(service, probe_seconds=attempts * (timeout + connect + 1))
    if not permit.allowed:
        metrics.OUTSIDE_CALLS.labels(service, "refused").inc()
        raise CircuitOpen(f"{service} is failing; not called", retry_after=permit.retry_after)
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **kwargs.pop("headers", {})}
    started = time.perf_counter()
    try:
        reply = _send(method, url, attempts=attempts, timeout=limits, headers=headers, **kwargs)
    except Unreachable as exc:
        _observe(service, "failed", started)
        if breaker.record_failure(permit):
            _, cooldown = breaker.settings()
            exc.retry_after = max(1, round(cooldown))
        raise
    _observe(service, "ok", started)
    breaker.record_success(permit)
    return reply


def _connect_timeout(read_timeout: float) -> float:
    configured = float(current_app.config.get("OUTSIDE_CONNECT_TIMEOUT_SECONDS", 3.0))
    return min(configured, read_timeout)


def _observe(service: str, outcome: str, started: float) -> None:
    metrics.OUTSIDE_CALLS.labels(service, outcome).inc()
    metrics.OUTSIDE_LATENCY.labels(service).observe(time.perf_counter() - started)


def _send(method: str, url: str, *, attempts: int, **kwargs: Any) -> Reply:
    where = f"{method} {url.split('?')[0]}"
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential_jitter(
            multiplier=BACKOFF_SECONDS, jitter=BACKOFF_SECONDS, max=1.0
        ),
        retry=tenacity.retry_if_exception_type(_Retryable),
        reraise=True,
    )
    try:
        return retrying(_attempt, method, url, **kwargs)
    except _Retryable as exc:
        log.warning("outside_unreachable", where=where, attempts=attempts, reason=str(exc))
        raise Unreachable(f"{where} did not answer") from exc


def _attempt(method: str, url: str, *, timeout: httpx.Timeout, **kwargs: Any) -> Reply:
    """Return the answer, or raise `_Retryable` / `Unreachable`."""
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.request(method, url, **kwargs)
            body = response.read()[:MAX_BODY_BYTES]
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
        raise _Retryable(type(exc).__name__) from exc
    except httpx.HTTPError as exc:  # a read or write timeout, or worse: do not wait twice
        log.warning("outside_failed", error_type=type(exc).__name__, url=url.split("?")[0])
        raise Unreachable(f"{method} {url.split('?')[0]} failed") from exc
    if response.status_code in RETRY_STATUSES:
        raise _Retryable(f"status {response.status_code}")
    if response.status_code >= 500:
        raise Unreachable(f"{method} {url.split('?')[0]} answered {response.status_code}")
    return Reply(response.status_code, body, dict(response.headers))


class BreakerStateCollector(Collector):
    """Reads every breaker's state from Redis at scrape time."""

    def __init__(self, app: Flask) -> None:
        """Collect for `app`'s Redis."""
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield `outside_breaker_state{service}` (0 closed, 1 open, 2 half-open)."""
        gauge = GaugeMetricFamily(
            "outside_breaker_state",
            "Circuit breaker per outside service: 0 closed, 1 open, 2 half-open.",
            labels=["service"],
        )
        with self.app.app_context():
            try:
                found = breaker.states(get_redis())
            except redis.RedisError:
                return
        for service, state in found.items():
            gauge.add_metric([service], int(state))
        yield gauge


metrics.add_scrape_collector(BreakerStateCollector)
