"""Outgoing webhooks: admins' endpoints, and recording events for them in the same transaction.

Any service that publishes a domain event calls `record_event(event_type=...,
data=...)` inside its own transaction: one `WebhookDelivery` row per active
endpoint subscribed to the type is written in that transaction (so a rollback
records nothing), and once it commits the dispatcher job is woken
(`jobs.webhooks.dispatch`, by name; best effort: the cron sweep finds what a
lost wake-up left). With no endpoint subscribed it costs one small query per
transaction: the active endpoints are read once per transaction (an order
records `order.created` and a `product.updated` per line; an import batch one
per row) and kept, per thread, with the transaction they were read in.
Sending is `backend.services.webhook_delivery`'s, in workers only.

The wake-up is deduplicated: a Redis key (`WAKE_KEY`) says a dispatcher is
queued and has not started yet, so a burst of events queues one job; the
dispatcher deletes the key as it starts, so an event committed after that
queues the next one.
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from typing import Any

import redis
import structlog
from flask import current_app

from backend.db import db
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.models import TEST_EVENT_TYPE, User, WebhookDelivery, WebhookEndpoint, utcnow
from backend.queues import enqueue
from backend.redis_store import get_redis
from backend.services import audit
from backend.services.access import require_role
from backend.services.audit import ClientInfo
from backend.webhook_sender import Refused, check_url, new_secret

log = structlog.get_logger(__name__)

DISPATCH_JOB = "jobs.webhooks.dispatch"
DISPATCH_QUEUE = "default"
DISPATCH_BUDGET_SECONDS = 60.0  # a run stops claiming after this, and wakes the next one
WAKE_KEY = "webhooks:wake"
WAKE_TTL_SECONDS = 60  # a lost dispatcher job blocks wake-ups this long at most
ROTATION_WINDOW = timedelta(hours=24)
EDITABLE = ("url", "events", "description", "is_active")
_read_in = threading.local()  # the active endpoints, and the transaction they were read in


def subscribed(events: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to `events` gets `event_type` (`family.*`, `*`)."""
    family = event_type.split(".", 1)[0]
    return event_type in events or f"{family}.*" in events or "*" in events


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18)}"


def dispatch_timeout() -> int:
    """Seconds a dispatcher job may run: its budget, then the last sends' lease, and a margin."""
    return int(DISPATCH_BUDGET_SECONDS + current_app.config["WEBHOOKS_LEASE_SECONDS"] + 30)


def wake() -> None:
    """Queue the dispatcher unless one is queued and not started yet (best effort, logged)."""
    try:
        client = get_redis()
        if client.set(WAKE_KEY, "1", nx=True, ex=WAKE_TTL_SECONDS):
            try:
                enqueue(DISPATCH_JOB, queue=DISPATCH_QUEUE, timeout=dispatch_timeout())
            except Exception:
                client.delete(WAKE_KEY)
                raise
    except redis.RedisError as exc:
        log.warning("webhook_wake_failed", error=str(exc))


def record_event(*, event_type: str, data: dict[str, Any]) -> int:
    """Record `event_type` for every active endpoint subscribed to it, in the current transaction.

    `data` (JSON-serialisable: the resource as the API returns it) is the
    delivery's `data`. The dispatcher is woken once the transaction commits;
    a rollback records nothing. Returns the number of deliveries recorded.
    """
    targets = [id_ for id_, events in _subscriptions() if subscribed(events, event_type)]
    if not targets:
        return 0
    now, event_id = utcnow(), _new_id("evt")
    WebhookDelivery.insert_many(
        [
            {
                "endpoint": target,
                "webhook_id": _new_id("msg"),
                "event_id": event_id,
                "event_type": event_type,
                "payload": data,
                "occurred_at": now,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }  # fmt: skip
            for target in targets
        ]
    ).execute()
    db.after_commit(wake)
    return len(targets)


def _subscriptions() -> list[tuple[int, list[str]]]:
    """The active endpoints' ids and events, read once per transaction (per query outside one)."""
    transaction = db.top_transaction()
    kept = getattr(_read_in, "kept", None)
    if transaction is not None and kept is not None and kept[0] is transaction:
        subscriptions: list[tuple[int, list[str]]] = kept[1]
        return subscriptions
    active = WebhookEndpoint.select(WebhookEndpoint.id, WebhookEndpoint.events).where(
        WebhookEndpoint.is_active == True  # noqa: E712 - SQL comparison
    )
    subscriptions = [(endpoint.id, endpoint.events) for endpoint in active]
    _read_in.kept = (transaction, subscriptions) if transaction is not None else None
    return subscriptions


def _check_destination(url: str) -> None:
    try:
        check_url(url, allow_private=bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE_NETWORKS"]))
    except Refused as exc:
        message = f"This URL cannot receive webhooks: {exc}."
        raise ValidationFailed(
            message, error="url_not_allowed", errors={"json": {"url": [message]}}
        ) from exc


def _get(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint_id)
    if endpoint is None:
        raise NotFound(f"Webhook {endpoint_id} not found.")
    return endpoint


def _audit(action: str, endpoint: WebhookEndpoint, actor: User, client: ClientInfo) -> None:
    audit.record(
        action, client=client, actor=actor, target_type="webhook", target_id=endpoint.id,
        data={"url": endpoint.url, "events": endpoint.events},
    )  # fmt: skip


def list_endpoints(*, actor: User, page: int, page_size: int) -> tuple[list[WebhookEndpoint], int]:
    """Return a page of the endpoints, oldest first, and the total (admin)."""
    require_role(actor, "admin")
    query = WebhookEndpoint.select().order_by(WebhookEndpoint.id)
    return list(query.paginate(page, page_size)), query.count()


def get_endpoint(*, actor: User, endpoint_id: int) -> WebhookEndpoint:
    """Return one endpoint (admin). Raises `NotFound`."""
    require_role(actor, "admin")
    return _get(endpoint_id)


def create_endpoint(
    *, actor: User, url: str, events: list[str], description: str, client: ClientInfo
) -> WebhookEndpoint:
    """Subscribe `url` to `events` with a new secret (admin); the result carries the secret.

    Raises `ValidationFailed` (`url_not_allowed`) when the URL does not resolve,
    or resolves to a private, loopback, link-local or metadata address (unless
    `WEBHOOKS_ALLOW_PRIVATE_NETWORKS`).
    """
    require_role(actor, "admin")
    _check_destination(url)
    with db.atomic():
        endpoint = WebhookEndpoint.create(
            url=url, events=list(dict.fromkeys(events)), description=description,
            secret=new_secret(),
        )  # fmt: skip
        _audit("webhook.created", endpoint, actor, client)
    return endpoint


def update_endpoint(
    *, actor: User, endpoint_id: int, changes: dict[str, Any], client: ClientInfo
) -> WebhookEndpoint:
    """Change an endpoint (admin); re-enabling one clears its failure run.

    Disabling it fails its pending deliveries. Raises `NotFound`, `ValidationFailed`.
    """
    require_role(actor, "admin")
    values = {key: value for key, value in changes.items() if key in EDITABLE}
    if "url" in values:
        _check_destination(values["url"])
    if "events" in values:
        values["events"] = list(dict.fromkeys(values["events"]))
    with db.atomic():
        endpoint = _get(endpoint_id)
        if values.get("is_active") and not endpoint.is_active:
            values.update(consecutive_failures=0, failing_since=None, disabled_reason=None,
                          disabled_at=None)  # fmt: skip
        elif values.get("is_active") is False and endpoint.is_active:
            values.update(disabled_reason="disabled by an admin", disabled_at=utcnow())
            fail_pending(endpoint_id=endpoint_id, reason="the endpoint was disabled")
        for key, value in values.items():
            setattr(endpoint, key, value)
        endpoint.save()
        _audit("webhook.updated", endpoint, actor, client)
    return endpoint


def delete_endpoint(*, actor: User, endpoint_id: int, client: ClientInfo) -> None:
    """Delete an endpoint and its delivery log (admin). Raises `NotFound`."""
    require_role(actor, "admin")
    with db.atomic():
        endpoint = _get(endpoint_id)
        _audit("webhook.deleted", endpoint, actor, client)
        WebhookDelivery.delete().where(WebhookDelivery.endpoint == endpoint_id).execute()
        endpoint.delete_instance()


def rotate_secret(*, actor: User, endpoint_id: int, client: ClientInfo) -> WebhookEndpoint:
    """Give an endpoint a new secret; the old one still signs (a second signature) for 24 h.

    Returns the endpoint carrying its new `secret`. Raises `NotFound`.
    """
    require_role(actor, "admin")
    with db.atomic():
        endpoint = _get(endpoint_id)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = utcnow() + ROTATION_WINDOW
        endpoint.secret = new_secret()
        endpoint.save()
        audit.record(
            "webhook.secret_rotated", client=client, actor=actor, target_type="webhook",
            target_id=endpoint.id, data={"previous_secret_until":
                                         endpoint.previous_secret_until.isoformat()},
        )  # fmt: skip
    return endpoint


def _active(endpoint_id: int) -> WebhookEndpoint:
    endpoint = _get(endpoint_id)
    if not endpoint.is_active:
        raise Conflict(
            "This webhook is disabled; enable it (PATCH is_active) first.",
            error="webhook_inactive",
        )
    return endpoint


def _queue_delivery(**fields: Any) -> WebhookDelivery:
    now = utcnow()
    delivery = WebhookDelivery.create(next_attempt_at=now, created_at=now, updated_at=now, **fields)
    db.after_commit(wake)
    return delivery


def send_test(*, actor: User, endpoint_id: int) -> WebhookDelivery:
    """Queue a `webhook.test` delivery to an endpoint (admin).

    Raises `NotFound`, or `Conflict` (`webhook_inactive`) for a disabled endpoint.
    """
    require_role(actor, "admin")
    endpoint = _active(endpoint_id)
    data = {"webhook": {"id": endpoint.id, "url": endpoint.url},
            "message": "A test delivery from flet-backend."}  # fmt: skip
    return _queue_delivery(
        endpoint=endpoint.id, webhook_id=_new_id("msg"), event_id=_new_id("evt"),
        event_type=TEST_EVENT_TYPE, payload=data, occurred_at=utcnow(),
    )  # fmt: skip


def list_deliveries(
    *, actor: User, endpoint_id: int, page: int, page_size: int
) -> tuple[list[WebhookDelivery], int]:
    """Return a page of an endpoint's deliveries, newest first, and the total (admin)."""
    require_role(actor, "admin")
    _get(endpoint_id)
    query = WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint_id)
    return list(query.order_by(WebhookDelivery.id.desc()).paginate(page, page_size)), query.count()


def redeliver(*, actor: User, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again as a new one with the same `webhook-id`, event and body (admin).

    Raises `NotFound` (no such delivery of this endpoint) or `Conflict`
    (`webhook_inactive`).
    """
    require_role(actor, "admin")
    _active(endpoint_id)
    original = WebhookDelivery.get_or_none(
        (WebhookDelivery.id == delivery_id) & (WebhookDelivery.endpoint == endpoint_id)
    )
    if original is None:
        raise NotFound(f"Delivery {delivery_id} of webhook {endpoint_id} not found.")
    return _queue_delivery(
        endpoint=endpoint_id, webhook_id=original.webhook_id, event_id=original.event_id,
        event_type=original.event_type, payload=original.payload,
        occurred_at=original.occurred_at,
    )  # fmt: skip


def fail_pending(*, endpoint_id: int, reason: str) -> int:
    """Fail every pending delivery of an endpoint (it was disabled); return how many."""
    now = utcnow()
    return int(
        WebhookDelivery.update(
            status="failed",
            last_error=reason,
            next_attempt_at=None,
            claimed_until=None,
            claim_token=None,
            updated_at=now,
        )  # fmt: skip
        .where((WebhookDelivery.endpoint == endpoint_id) & (WebhookDelivery.status == "pending"))
        .execute()
    )
