"""Prometheus metrics: requests by endpoint and status, RQ queue depths, webhook deliveries.

Under gunicorn with several workers set `PROMETHEUS_MULTIPROC_DIR` (the
gunicorn config does) so that `/metrics` adds up every worker's counters.

Webhooks are sent by RQ workers, on any machine, which `/metrics` cannot see:
they add their figures to one Redis hash (`observe_webhook_attempts`), read at
scrape time: `webhook_deliveries_total{outcome}` (an attempt's verdict:
`succeeded`, `retried`, `failed`, `gone`, `skipped`, `lost`),
`webhook_attempt_duration_seconds` (one HTTP attempt) and
`webhook_delivery_lag_seconds` (the event's commit to its successful delivery).
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import redis
from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# In multiprocess mode every metric writes to this folder from the moment it is
# created (at import), so it must exist first.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled.", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time spent handling HTTP requests.",
    ["method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SSE_CONNECTIONS = Gauge("sse_connections", "Open event streams.", multiprocess_mode="livesum")
SSE_DELIVERED = Counter(
    "sse_events_delivered_total", "Events queued to live event streams, or replayed as they open."
)
SSE_DROPPED = Counter(
    "sse_events_dropped_total", "Events not queued because a client's queue was full."
)
OUTSIDE_CALLS = Counter(
    "outside_calls_total",
    "Calls to outside services by outcome: ok, failed, refused (breaker open).",
    ["service", "outcome"],
)
OUTSIDE_LATENCY = Histogram(
    "outside_call_duration_seconds",
    "Time spent on calls to outside services, retries included.",
    ["service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
_OWN_METRICS = (
    REQUESTS, LATENCY, SSE_CONNECTIONS, SSE_DELIVERED, SSE_DROPPED, OUTSIDE_CALLS, OUTSIDE_LATENCY
)  # fmt: skip
# Collectors that read shared state at scrape time, added by the modules that own that state.
_SCRAPE_COLLECTORS: list[Callable[[Flask], Collector]] = []


def add_scrape_collector(factory: Callable[[Flask], Collector]) -> None:
    """Have every scrape also run `factory(app)`'s collector (e.g. state kept in Redis)."""
    if factory not in _SCRAPE_COLLECTORS:
        _SCRAPE_COLLECTORS.append(factory)


class QueueDepthCollector(Collector):
    """Reads RQ queue lengths from Redis at scrape time."""

    def __init__(self, app: Flask) -> None:
        """Collect for `app`'s queues."""
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield `rq_queue_jobs{queue=...}`; nothing when Redis is unreachable."""
        from backend.queues import queue_depths

        gauge = GaugeMetricFamily(
            "rq_queue_jobs", "Jobs waiting in each RQ queue.", labels=["queue"]
        )
        with self.app.app_context():
            try:
                depths = queue_depths()
            except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
                return
        for name, depth in depths.items():
            gauge.add_metric([name], depth)
        yield gauge


WEBHOOK_STATS_KEY = "metrics:webhooks"
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WEBHOOK_HISTOGRAMS = {
    "duration": ("webhook_attempt_duration_seconds", "Time one webhook attempt took."),
    "lag": ("webhook_delivery_lag_seconds", "From the event's commit to its delivery."),
}


def _tally_seconds(tally: Tally[str], sums: dict[str, float], name: str, seconds: float) -> None:
    tally[f"{name}:count"] += 1
    sums[f"{name}:sum"] = sums.get(f"{name}:sum", 0.0) + seconds
    for bound in WEBHOOK_BUCKETS:
        if seconds <= bound:
            tally[f"{name}:le:{bound}"] += 1


def observe_webhook_attempts(
    client: redis.Redis, attempts: Iterable[tuple[str, float, float | None]]
) -> None:
    """Add webhook attempts to the shared figures: `(verdict, seconds, lag or None)` each.

    One pipelined round trip for the lot. Raises `redis.RedisError`.
    """
    tally: Tally[str] = Tally()
    sums: dict[str, float] = {}
    for verdict, seconds, lag in attempts:
        tally[f"outcome:{verdict}"] += 1
        _tally_seconds(tally, sums, "duration", seconds)
        if lag is not None:
            _tally_seconds(tally, sums, "lag", lag)
    if not tally:
        return
    pipe = client.pipeline(transaction=False)
    for field, count in tally.items():
        pipe.hincrby(WEBHOOK_STATS_KEY, field, count)
    for field, total in sums.items():
        pipe.hincrbyfloat(WEBHOOK_STATS_KEY, field, total)
    pipe.execute()


def _histogram(stats: dict[str, str], name: str) -> HistogramMetricFamily:
    metric, help_text = WEBHOOK_HISTOGRAMS[name]
    buckets = [(str(bound), float(stats.get(f"{name}:le:{bound}", 0))) for bound in WEBHOOK_BUCKETS]
    buckets.append(("+Inf", float(stats.get(f"{name}:count", 0))))
    return HistogramMetricFamily(
        metric, help_text, buckets=buckets, sum_value=float(stats.get(f"{name}:sum", 0))
    )


class WebhookCollector(Collector):
    """Reads the workers' webhook figures from Redis at scrape time."""

    def __init__(self, app: Flask) -> None:
        """Collect from `app`'s Redis."""
        self.app = app

    def collect(self) -> Iterator[Any]:
        """Yield the delivery counter and the two histograms; nothing when Redis is down."""
        from backend.redis_store import get_redis

        with self.app.app_context():
            try:
                raw = get_redis().hgetall(WEBHOOK_STATS_KEY)
            except redis.RedisError:
                return
        stats = {_text(k): _text(v) for k, v in raw.items()}
        outcomes = CounterMetricFamily(
            "webhook_deliveries", "Webhook attempts by verdict.", labels=["outcome"]
        )
        for field, value in sorted(stats.items()):
            if field.startswith("outcome:"):
                outcomes.add_metric([field.removeprefix("outcome:")], float(value))
        yield outcomes
        yield _histogram(stats, "duration")
        yield _histogram(stats, "lag")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def observe_request(method: str, endpoint: str, status: int, started: float) -> None:
    """Count a request and its latency (`started`: its `time.perf_counter()` at arrival)."""
    labels = (method, endpoint, str(status))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(time.perf_counter() - started)


def _observe(response: Response) -> Response:
    started = g.get("metrics_started")
    if started is not None:
        rule = request.url_rule
        observe_request(
            request.method, rule.rule if rule else "<unmatched>", response.status_code, started
        )
    return response


def render() -> tuple[bytes, str]:
    """Return the exposition text and its content type for this deployment."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        for metric in _OWN_METRICS:
            registry.register(metric)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for factory in (QueueDepthCollector, WebhookCollector, *_SCRAPE_COLLECTORS):
        registry.register(factory(app))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def init_app(app: Flask) -> None:
    """Time every request."""
    app.before_request(_start_timer)
    app.after_request(_observe)
