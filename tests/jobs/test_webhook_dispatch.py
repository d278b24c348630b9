"""The webhook dispatcher on real parts: the RQ worker, the database, Redis and a live receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.db import db
from backend.models import Notification, User, WebhookDelivery, WebhookEndpoint
from backend.redis_store import get_redis
from backend.services import webhook_delivery, webhooks
from backend.services.audit import ClientInfo
from tests.support.accounts import ADMIN_EMAIL, login, make_user
from tests.support.catalog import make_product
from tests.support.helpers import json_body, stream_events
from tests.support.webhook_receiver import Receiver

API = "/api/v1"
SETTINGS: dict[str, Any] = {
    "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": True,
    "WEBHOOKS_RETRY_SCHEDULE": [0.05],
    "WEBHOOKS_MAX_ATTEMPTS": 3,
    "WEBHOOKS_TIMEOUT_SECONDS": 0.5,
    "WEBHOOKS_LEASE_SECONDS": 1.0,
    "WEBHOOKS_CONCURRENCY": 4,
}


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The app with quick retries and timeouts, allowed to send to 127.0.0.1."""
    flask_app = make_app(**SETTINGS)
    with flask_app.app_context():
        yield flask_app


@pytest.fixture
def root(app: Flask) -> User:
    return make_user(ADMIN_EMAIL, role="admin")


def subscribe(root: User, receiver: Receiver, events: list[str] | None = None) -> WebhookEndpoint:
    endpoint = webhooks.create_endpoint(
        actor=root, url=receiver.url, events=events or ["*"], description="", client=ClientInfo()
    )
    receiver.secret = endpoint.secret
    return endpoint


def record(count: int = 1, event_type: str = "order.created") -> None:
    with db.atomic():
        for n in range(count):
            webhooks.record_event(event_type=event_type, data={"n": n})


def deliveries() -> list[WebhookDelivery]:
    return list(WebhookDelivery.select().order_by(WebhookDelivery.id))


def sweep(run_worker: Callable[[], bool], after: float = 0.0) -> None:
    """Wait `after` seconds, then queue a dispatcher as the cron does and run it."""
    time.sleep(after)
    webhooks.wake()
    run_worker()


def test_a_product_event_is_delivered_as_the_api_shows_the_product(
    client: FlaskClient, root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    subscribe(root, webhook_receiver, ["product.*"])
    admin = login(client, ADMIN_EMAIL).headers
    body = {"sku": "TEA-1", "name": "Tea", "price": "4.50", "stock": 3}
    created = json_body(client.post(f"{API}/products", json=body, headers=admin))
    assert WebhookDelivery.select().count() == 1  # recorded with the product, before any worker
    run_worker()
    (got,) = webhook_receiver.wait_for(1)
    assert got.verified
    assert got.headers["content-type"] == "application/json"
    assert got.json["type"] == "product.created"
    assert got.json["data"] == created
    assert got.json["timestamp"].endswith("+00:00")
    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    assert delivery.webhook_id == got.webhook_id
    assert delivery.duration_ms is not None
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'webhook_deliveries_total{outcome="succeeded"} 1.0' in metrics
    assert "webhook_delivery_lag_seconds_count 1.0" in metrics


def test_an_order_records_its_events_for_the_subscribed_webhooks_only(
    client: FlaskClient, root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    orders = subscribe(root, webhook_receiver, ["order.created"])
    subscribe(root, webhook_receiver, ["payment.*"])
    make_product("MUG-1", stock=5)
    make_user("ada@example.test")
    shopper = login(client, "ada@example.test").headers
    placed = client.post(f"{API}/orders", json={"items": [{"product_id": 1, "quantity": 2}]},
                         headers=shopper)  # fmt: skip
    assert placed.status_code == 201
    assert [(d.endpoint_id, d.event_type) for d in deliveries()] == [(orders.id, "order.created")]
    run_worker()
    (got,) = webhook_receiver.wait_for(1)
    assert got.json["data"] == placed.get_json()


def test_a_rolled_back_transaction_records_no_delivery(
    root: User, webhook_receiver: Receiver
) -> None:
    subscribe(root, webhook_receiver)
    with db.atomic() as transaction:
        assert webhooks.record_event(event_type="order.created", data={"id": 1}) == 1
        transaction.rollback()
    assert deliveries() == []
    assert get_redis().get(webhooks.WAKE_KEY) is None  # nothing was woken either
    assert webhooks.record_event(event_type="order.created", data={"id": 2}) == 1  # autocommit


def test_no_webhook_costs_one_query_per_transaction(root: User, webhook_receiver: Receiver) -> None:
    queries: list[str] = []
    database = db.obj
    database.query_hooks.append(lambda event: queries.append(event.sql))
    try:
        with db.atomic():
            for _ in range(5):
                assert webhooks.record_event(event_type="product.updated", data={}) == 0
    finally:
        database.query_hooks.clear()
    assert len([q for q in queries if "webhook_endpoint" in q]) == 1


def test_a_receiver_that_is_down_gets_the_delivery_once_it_is_back(
    client: FlaskClient, root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    endpoint = subscribe(root, webhook_receiver)
    webhook_receiver.stop()
    record()
    run_worker()
    (waiting,) = deliveries()
    assert (waiting.status, waiting.attempts, waiting.response_status) == ("pending", 1, None)
    assert "ConnectError" in (waiting.last_error or "")
    assert WebhookEndpoint.get_by_id(endpoint.id).consecutive_failures == 1
    webhook_receiver.start()
    sweep(run_worker, after=0.1)
    (got,) = webhook_receiver.wait_for(1)
    assert got.webhook_id == waiting.webhook_id
    admin = login(client, ADMIN_EMAIL).headers
    (logged,) = client.get(f"{API}/webhooks/{endpoint.id}/deliveries", headers=admin).get_json()
    assert (logged["status"], logged["attempts"], logged["response_status"]) == (
        "succeeded", 2, 200,
    )  # fmt: skip
    assert WebhookEndpoint.get_by_id(endpoint.id).consecutive_failures == 0


def test_a_slow_receiver_times_out_and_the_delivery_is_retried(
    root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    subscribe(root, webhook_receiver)
    webhook_receiver.mode = "hang"
    record()
    started = time.monotonic()
    run_worker()
    assert time.monotonic() - started < 3
    (waiting,) = deliveries()
    assert (waiting.status, waiting.last_error) == ("pending", "timed out after 0.5 s")
    webhook_receiver.mode = "ok"
    webhook_receiver.release()
    sweep(run_worker, after=0.1)
    assert deliveries()[0].status == "succeeded"
    assert len({r.webhook_id for r in webhook_receiver.wait_for(2)}) == 1


def test_failures_are_retried_up_to_the_limit_and_a_redirect_is_not_followed(
    root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    subscribe(root, webhook_receiver)
    webhook_receiver.mode = "redirect"
    record()
    for _ in range(4):
        sweep(run_worker, after=0.08)
    (failed,) = deliveries()
    assert (failed.status, failed.attempts, failed.response_status) == ("failed", 3, 307)
    assert failed.last_error == "the endpoint answered 307"
    assert failed.next_attempt_at is None
    assert len(webhook_receiver.received) == 3  # the Location was never followed


def test_a_410_disables_the_webhook(
    root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    endpoint = subscribe(root, webhook_receiver)
    webhook_receiver.mode = "gone"
    record(1)
    run_worker()
    record(1)  # recorded no more: the endpoint is disabled
    disabled = WebhookEndpoint.get_by_id(endpoint.id)
    assert (disabled.is_active, disabled.disabled_reason) == (False, webhook_delivery.GONE)
    assert [(d.status, d.response_status) for d in deliveries()] == [("failed", 410)]
    assert [kind for kind, _ in stream_events("admin")] == ["webhook.disabled"]


def test_a_run_of_failures_disables_the_webhook_and_tells_the_admins(
    make_app: Callable[..., Flask], root: User, webhook_receiver: Receiver,
    run_worker: Callable[[], bool],
) -> None:  # fmt: skip
    quick = {"WEBHOOKS_DISABLE_AFTER_FAILURES": 3, "WEBHOOKS_DISABLE_AFTER_SECONDS": 0.1}
    strict = make_app(**{**SETTINGS, **quick, "WEBHOOKS_MAX_ATTEMPTS": 10})
    endpoint = subscribe(root, webhook_receiver)
    other_admin = make_user("second@example.test", role="admin")
    webhook_receiver.mode = "fail"
    record(2)
    with strict.app_context():
        for _ in range(3):
            sweep(run_worker, after=0.08)
    disabled = WebhookEndpoint.get_by_id(endpoint.id)
    assert not disabled.is_active
    assert disabled.consecutive_failures >= 3
    assert disabled.disabled_reason == "every attempt failed for too long"
    assert {d.status for d in deliveries()} == {"failed"}
    notified = Notification.select().where(Notification.kind == "webhook.disabled")
    assert sorted(n.user_id for n in notified) == sorted([root.id, other_admin.id])
    ((kind, data),) = stream_events("admin")
    assert (kind, data["id"], data["is_active"]) == ("webhook.disabled", endpoint.id, False)
    assert "secret" not in data


def test_two_dispatchers_never_claim_the_same_delivery(
    app: Flask, root: User, webhook_receiver: Receiver
) -> None:
    subscribe(root, webhook_receiver)
    record(120)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    together = threading.Barrier(2)

    def claimer(name: str) -> None:
        with app.app_context():
            together.wait()
            while batch := webhook_delivery.claim(limit=7):
                assert len(batch) <= 7
                claimed[name] += [c.delivery_id for c in batch]
                time.sleep(0.005)  # sending: the other one claims meanwhile

    threads = [threading.Thread(target=claimer, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    both = claimed["a"] + claimed["b"]
    assert sorted(both) == [d.id for d in deliveries()]  # each exactly once
    assert claimed["a"]
    assert claimed["b"]


def test_a_claim_whose_worker_died_is_sent_again_with_the_same_id(
    root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    subscribe(root, webhook_receiver)
    record()
    (abandoned,) = webhook_delivery.claim(limit=10)  # then the worker is SIGKILLed
    assert webhook_delivery.claim(limit=10) == []  # leased: nobody else sends it meanwhile
    run_worker()
    assert webhook_receiver.received == []
    sweep(run_worker, after=1.05)  # the lease (1 s) ran out
    (got,) = webhook_receiver.wait_for(1)
    assert abandoned.message is not None
    assert got.webhook_id == abandoned.message.webhook_id
    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    late = webhook_delivery.Outcome(200, "", None, 0.1)
    assert webhook_delivery.record_outcomes([(abandoned, late)])["lost"] == 1


def test_the_ssrf_guard_refuses_loopback_at_send_time_when_not_allowed(
    make_app: Callable[..., Flask], root: User, webhook_receiver: Receiver,
    run_worker: Callable[[], bool],
) -> None:  # fmt: skip
    subscribe(root, webhook_receiver)  # saved while private networks were allowed
    record()
    strict = make_app(**{**SETTINGS, "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": False})
    with strict.app_context():
        webhook_delivery.dispatch()
    (refused,) = deliveries()
    assert refused.status == "pending"
    assert refused.last_error == "refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address"
    assert webhook_receiver.received == []
    sweep(run_worker, after=0.1)  # allowed again
    assert webhook_receiver.wait_for(1)
    assert deliveries()[0].status == "succeeded"


def test_many_deliveries_are_sent_concurrently_over_reused_connections(
    root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    subscribe(root, webhook_receiver)
    record(200)
    run_worker()
    assert len(webhook_receiver.wait_for(200)) == 200
    assert all(r.verified for r in webhook_receiver.received)
    assert {d.status for d in deliveries()} == {"succeeded"}


def test_a_delivery_to_an_endpoint_disabled_meanwhile_is_failed_unsent(
    root: User, webhook_receiver: Receiver, run_worker: Callable[[], bool]
) -> None:
    endpoint = subscribe(root, webhook_receiver)
    record()
    WebhookEndpoint.update(is_active=False).where(WebhookEndpoint.id == endpoint.id).execute()
    assert webhook_delivery.dispatch() == {"skipped": 1}
    (skipped,) = deliveries()
    assert (skipped.status, skipped.last_error) == ("failed", "the endpoint was disabled")
    assert webhook_receiver.received == []


def test_a_run_past_its_budget_leaves_the_rest_to_the_next_one(
    root: User, webhook_receiver: Receiver
) -> None:
    subscribe(root, webhook_receiver)
    record(3)
    get_redis().delete(webhooks.WAKE_KEY)
    assert webhook_delivery.dispatch(budget_seconds=0) == {}
    assert get_redis().get(webhooks.WAKE_KEY) is not None  # the next run is queued
    assert {d.status for d in deliveries()} == {"pending"}


def test_without_redis_the_wake_up_and_the_metrics_are_skipped_not_fatal(
    make_app: Callable[..., Flask], root: User, webhook_receiver: Receiver, tmp_path: Any
) -> None:
    subscribe(root, webhook_receiver)
    record()
    broken = make_app(**SETTINGS, REDIS_URL=f"unix://{tmp_path}/nothing-here.sock")
    with broken.app_context():
        webhooks.wake()  # logged, not raised: the cron sweep will find the delivery
        assert webhook_delivery.dispatch() == {"succeeded": 1}
    assert webhook_receiver.wait_for(1)
