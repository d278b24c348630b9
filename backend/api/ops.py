"""Operations endpoints outside `/api/v1`: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Response, current_app, request
from marshmallow import Schema, fields

from backend import metrics
from backend.api.blueprint import Blueprint
from backend.errors import Unauthorized
from backend.services import health

blp = Blueprint("ops", __name__, description="Liveness, readiness and metrics for operators.")


class HealthSchema(Schema):
    """Liveness answer."""

    status = fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(HealthSchema):
    """Readiness answer: the state of each dependency."""

    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


@blp.route("/healthz")
@blp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    """Report that the process is up.

    Touches neither the database nor Redis.
    """
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, ReadinessSchema)
@blp.alt_response(
    503,
    description=(
        "Not ready, in the error shape: `service_unavailable` when the database or Redis is "
        "unreachable (`errors` names each), or `draining` while this process shuts down "
        'gracefully (`errors`: `{"instance": "draining"}`, `Retry-After`); a '
        "health-checking load balancer then sends requests to the other instances."
    ),
    example={
        "code": 503,
        "status": "Service Unavailable",
        "error": "draining",
        "message": "Draining: this instance is shutting down; send requests to another one.",
        "errors": {"instance": "draining"},
    },
)
def readyz() -> dict[str, Any]:
    """Report whether this process serves: not draining, database and Redis reachable.

    A process drains from the SIGTERM of a graceful stop (a restart) until it
    exits: it finishes its requests and ends its event streams meanwhile.
    """
    return {"status": "ok", "checks": health.check_readiness()}


def _check_metrics_token() -> None:
    """Refuse the scrape unless it carries `METRICS_TOKEN` (when one is configured)."""
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("Metrics need `Authorization: Bearer <METRICS_TOKEN>`.")


@blp.route("/metrics")
@blp.doc(
    responses={
        200: {"description": "Prometheus text exposition format."},
        401: {"description": "`METRICS_TOKEN` is set and the request did not carry it."},
    },
    security=[{"bearerAuth": []}],
)
def prometheus_metrics() -> Response:
    """Expose Prometheus metrics: requests, latency and RQ queue depths.

    When `METRICS_TOKEN` is set, the scrape must send `Authorization: Bearer
    <METRICS_TOKEN>`; otherwise it answers 401.
    """
    _check_metrics_token()
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
