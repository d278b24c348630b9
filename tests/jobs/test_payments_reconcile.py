"""Reconciliation: a webhook that never came does not strand an order.

The job asks the Stripe stand-in (a real local server) about payments left
open, through the webhook's own code path; a real RQ worker runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq.cron import CronScheduler

from backend.config import PROJECT_ROOT
from backend.models import Order, Payment, utcnow
from backend.queues import QUEUE_NAMES, enqueue
from backend.redis_store import client_from_url, get_redis
from backend.services import payments
from jobs.payments import reconcile_payments
from jobs.worker import SimpleWorker
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.helpers import stream_events
from tests.support.stripe_stand_in import WEBHOOK_PATH, StripeStandIn

API = "/api/v1"


@pytest.fixture
def paying_app(make_app: Callable[..., Flask], stripe_stand_in: StripeStandIn) -> Iterator[Flask]:
    flask_app = make_app(**stripe_stand_in.settings(PAYMENTS_RECONCILE_AFTER_MINUTES=0))
    with flask_app.app_context():
        yield flask_app


@pytest.fixture
def shop(paying_app: Flask) -> FlaskClient:
    return paying_app.test_client()


def paid_order(client: FlaskClient) -> tuple[int, str, dict[str, str]]:
    """Place and pay an order; return its id, the intent's id and the buyer's headers."""
    make_user("ada@example.test")
    headers = login(client, "ada@example.test").headers
    product = make_product("TEA", price="3.00", stock=5)
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    order_id = client.post(f"{API}/orders", json=body, headers=headers).get_json()["id"]
    payment = client.post(f"{API}/orders/{order_id}/pay", headers=headers).get_json()["payment"]
    return order_id, payment["provider_payment_id"], headers


def age(minutes: int) -> None:
    """Make every payment look unchanged for `minutes`."""
    Payment.update(updated_at=utcnow() - timedelta(minutes=minutes)).execute()


def test_a_missed_success_is_applied_by_the_job_and_the_late_webhook_changes_nothing(
    shop: FlaskClient, stripe_stand_in: StripeStandIn
) -> None:
    order_id, intent_id, _ = paid_order(shop)
    late = stripe_stand_in.complete(intent_id)  # the webhook is lost: nobody posts it
    worker = SimpleWorker(list(QUEUE_NAMES), connection=get_redis())
    enqueue("jobs.payments.reconcile_payments")
    assert worker.work(burst=True, with_scheduler=False)
    assert Order.get_by_id(order_id).status == "confirmed"
    assert Payment.get().status == "succeeded"
    assert shop.post(WEBHOOK_PATH, data=late.payload, headers=late.headers).get_json() == {
        "result": "unchanged"
    }
    user_id = Order.get_by_id(order_id).user_id
    types = [t for t, _ in stream_events(f"user:{user_id}") if t.startswith("payment.")]
    assert types == ["payment.succeeded"]


def test_only_payments_open_long_enough_are_asked_about_and_then_rotated(
    shop: FlaskClient, paying_app: Flask, stripe_stand_in: StripeStandIn
) -> None:
    paying_app.config["PAYMENTS_RECONCILE_AFTER_MINUTES"] = 10
    order_id, intent_id, _ = paid_order(shop)
    stripe_stand_in.complete(intent_id, "failed")
    assert reconcile_payments() == {"checked": 0, "changed": 0, "unreachable": 0}
    age(11)
    assert reconcile_payments() == {"checked": 1, "changed": 1, "unreachable": 0}
    assert Payment.get().status == "failed"
    assert Payment.get().checked_at is not None
    age(11)
    assert reconcile_payments()["checked"] == 0  # checked a moment ago
    Payment.update(checked_at=utcnow() - timedelta(minutes=11)).execute()
    assert reconcile_payments() == {"checked": 1, "changed": 0, "unreachable": 0}
    assert Order.get_by_id(order_id).status == "pending"


def test_an_unreachable_provider_stops_the_run(
    shop: FlaskClient, stripe_stand_in: StripeStandIn
) -> None:
    paid_order(shop)
    stripe_stand_in.stop()
    counts = payments.reconcile(older_than=timedelta(0), limit=10)
    assert counts == {"checked": 0, "changed": 0, "unreachable": 1}
    assert Payment.get().status == "requires_payment"


def test_the_job_does_nothing_without_payments_configured(app: Flask) -> None:
    assert reconcile_payments() == {"checked": 0, "changed": 0, "unreachable": 0}


def test_the_cron_schedule_runs_it(redis_url: str) -> None:
    scheduler = CronScheduler(connection=client_from_url(redis_url))
    scheduler.load_config_from_file(str(Path(PROJECT_ROOT) / "jobs" / "schedule.py"))
    found = {job.func_name: job for job in scheduler.get_jobs()}
    assert found["jobs.payments.reconcile_payments"].interval == 300
