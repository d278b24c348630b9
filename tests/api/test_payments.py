"""Paying orders through Stripe's API (a real local stand-in), and its webhooks.

Every call goes to `tests.support.stripe_stand_in` over HTTP; events are
signed as Stripe signs them and posted to the app's webhook.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from backend.models import (
    Notification,
    Order,
    Payment,
    ProviderEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from backend.services.payment_provider import sign
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.helpers import assert_error, json_body, stream_events
from tests.support.stripe_stand_in import (
    WEBHOOK_PATH,
    StripeStandIn,
    WebhookEvent,
    signed_event,
)

API = "/api/v1"


@pytest.fixture
def paying_app(make_app: Callable[..., Flask], stripe_stand_in: StripeStandIn) -> Iterator[Flask]:
    """The app with payments pointing at the stand-in."""
    flask_app = make_app(**stripe_stand_in.settings())
    with flask_app.app_context():
        yield flask_app


@pytest.fixture
def shop(paying_app: Flask) -> FlaskClient:
    return paying_app.test_client()


@pytest.fixture
def ada(shop: FlaskClient) -> dict[str, str]:
    make_user("ada@example.test")
    return login(shop, "ada@example.test").headers


def place(client: FlaskClient, headers: dict[str, str], price: str = "10.00", qty: int = 2) -> int:
    product = make_product(f"SKU-{time.monotonic_ns()}", price=price, stock=10)
    body = {"items": [{"product_id": product.id, "quantity": qty}]}
    response = client.post(f"{API}/orders", json=body, headers=headers)
    assert response.status_code == 201, response.data
    return int(json_body(response)["id"])


def pay(client: FlaskClient, headers: dict[str, str], order_id: int) -> TestResponse:
    return client.post(f"{API}/orders/{order_id}/pay", headers=headers)


def paid(client: FlaskClient, headers: dict[str, str], order_id: int) -> dict[str, Any]:
    response = pay(client, headers, order_id)
    assert response.status_code == 201, response.data
    payment: dict[str, Any] = json_body(response)["payment"]
    return payment


def deliver(client: FlaskClient, event: WebhookEvent) -> TestResponse:
    return client.post(WEBHOOK_PATH, data=event.payload, headers=event.headers)


def order_of(client: FlaskClient, headers: dict[str, str], order_id: int) -> dict[str, Any]:
    return json_body(client.get(f"{API}/orders/{order_id}", headers=headers))


def test_paying_then_the_providers_success_confirms_the_order(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada, price="10.25", qty=2)
    assert order_of(shop, ada, order_id)["payment"] is None
    payment = paid(shop, ada, order_id)
    assert payment["status"] == "requires_payment"
    assert (payment["amount"], payment["currency"], payment["provider"]) == (
        "20.50",
        "USD",
        "stripe",
    )
    intent = stripe_stand_in.intents[payment["provider_payment_id"]]
    assert (intent["amount"], intent["currency"]) == (2050, "usd")
    assert intent["metadata"] == {"order_id": str(order_id)}
    assert payment["client_secret"] == intent["client_secret"]
    pending = order_of(shop, ada, order_id)
    assert pending["payment"]["status"] == "requires_payment"
    assert "client_secret" not in pending["payment"]  # orders also reach admins and webhooks

    answer = deliver(shop, stripe_stand_in.complete(payment["provider_payment_id"]))
    assert (answer.status_code, json_body(answer)) == (200, {"result": "applied"})
    done = order_of(shop, ada, order_id)
    assert done["status"] == "confirmed"
    assert done["payment"]["status"] == "succeeded"
    user_id = done["user_id"]
    mine = [(t, d) for t, d in stream_events(f"user:{user_id}") if not t.startswith("notif")]
    assert [t for t, _ in mine] == ["order.created", "order.status_changed", "payment.succeeded"]
    assert mine[1][1] == done  # the order event is the order as a GET returns it, payment included
    assert mine[2][1]["order_id"] == order_id
    assert "client_secret" not in mine[2][1]
    admin_types = [t for t, _ in stream_events("admin") if t.startswith(("order.", "payment."))]
    assert admin_types == ["order.created", "order.status_changed", "payment.succeeded"]
    kinds = [n.kind for n in Notification.select().order_by(Notification.id)]
    assert kinds == ["order.status_changed", "payment.succeeded"]


def test_paying_twice_returns_the_same_payment_and_makes_one_intent(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    first, second = paid(shop, ada, order_id), paid(shop, ada, order_id)
    assert first == second
    assert stripe_stand_in.creates() == 1
    assert stripe_stand_in.calls.count("POST /v1/payment_intents") == 1
    assert Payment.select().count() == 1


def test_a_lost_answer_is_retried_with_the_same_key_and_makes_one_intent(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    stripe_stand_in.drop_after_create = 1  # created, then the connection closes unanswered
    payment = paid(shop, ada, order_id)
    assert stripe_stand_in.calls.count("POST /v1/payment_intents") == 2
    assert stripe_stand_in.creates() == 1
    assert payment["provider_payment_id"] in stripe_stand_in.intents


def test_a_request_that_gave_up_leaves_nothing_and_its_retry_gets_the_same_intent(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    stripe_stand_in.drop_after_create = 3  # every attempt of the first request is lost
    failed = assert_error(pay(shop, ada, order_id), 503, "provider_unavailable")
    assert failed["message"]
    assert Payment.select().count() == 0
    assert stripe_stand_in.creates() == 1
    payment = paid(shop, ada, order_id)
    assert stripe_stand_in.creates() == 1
    assert list(stripe_stand_in.intents) == [payment["provider_payment_id"]]


def test_a_provider_error_answer_is_503_and_writes_nothing(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    stripe_stand_in.failures = 1  # a 500 before anything is created
    response = pay(shop, ada, order_id)
    assert_error(response, 503, "provider_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert Payment.select().count() == 0
    assert paid(shop, ada, order_id)["status"] == "requires_payment"
    assert stripe_stand_in.creates() == 1


def test_a_provider_that_is_down_or_hangs_is_503_with_retry_after(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    stripe_stand_in.mode, stripe_stand_in.hang_seconds = "hang", 1.5
    started = time.monotonic()
    response = pay(shop, ada, order_id)
    assert_error(response, 503, "provider_unavailable")
    assert time.monotonic() - started < 1.4  # one read timeout (0.5 s): a hang is not retried
    stripe_stand_in.mode = "ok"
    stripe_stand_in.stop()
    response = pay(shop, ada, order_id)
    assert_error(response, 503, "provider_unavailable")
    assert response.headers["Retry-After"].isdigit()
    assert Payment.select().count() == 0


def test_the_open_breaker_answers_at_once_without_calling_then_recovers(
    make_app: Callable[..., Flask], stripe_stand_in: StripeStandIn
) -> None:
    app = make_app(
        **stripe_stand_in.settings(PROVIDER_BREAKER_FAILURES=2, PROVIDER_BREAKER_COOLDOWN_SECONDS=1)
    )
    with app.app_context():
        client = app.test_client()
        make_user("ada@example.test")
        ada = login(client, "ada@example.test").headers
        order_id = place(client, ada)
        stripe_stand_in.mode = "error"
        for _ in range(2):
            assert_error(pay(client, ada, order_id), 503, "provider_unavailable")
        calls = len(stripe_stand_in.calls)
        started = time.monotonic()
        refused = pay(client, ada, order_id)
        elapsed = time.monotonic() - started
        assert_error(refused, 503, "provider_unavailable")
        assert elapsed < 0.2
        assert len(stripe_stand_in.calls) == calls  # the provider was not called
        assert refused.headers["Retry-After"] == "1"
        stripe_stand_in.mode = "ok"
        time.sleep(1.1)
        assert pay(client, ada, order_id).status_code == 201


def test_only_a_pending_order_of_ones_own_can_be_paid(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    assert_error(shop.post(f"{API}/orders/{order_id}/pay"), 401, "unauthorized")
    make_user("bob@example.test")
    bob = login(shop, "bob@example.test").headers
    assert_error(pay(shop, bob, order_id), 404, "not_found")
    make_user("root@example.test", role="admin")
    admin = login(shop, "root@example.test").headers
    assert_error(pay(shop, admin, order_id), 404, "not_found")  # admins pay no one else's order
    assert_error(pay(shop, ada, 999_999), 404, "not_found")
    assert shop.post(f"{API}/orders/{order_id}/cancel", headers=ada).status_code == 200
    assert_error(pay(shop, ada, order_id), 409, "order_not_payable")
    assert stripe_stand_in.calls == []


def test_the_same_event_twice_is_applied_once(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    payment = paid(shop, ada, order_id)
    event = stripe_stand_in.complete(payment["provider_payment_id"])
    assert json_body(deliver(shop, event)) == {"result": "applied"}
    assert json_body(deliver(shop, event)) == {"result": "duplicate"}
    user_id = order_of(shop, ada, order_id)["user_id"]
    types = [t for t, _ in stream_events(f"user:{user_id}")]
    assert types.count("payment.succeeded") == 1
    assert types.count("order.status_changed") == 1
    assert Notification.select().where(Notification.kind == "payment.succeeded").count() == 1
    assert ProviderEvent.select().count() == 1


@pytest.mark.parametrize(
    "tamper",
    ["missing", "wrong_secret", "stale", "garbled", "other_body"],
)
def test_a_bad_signature_is_400_and_changes_nothing(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn, tamper: str
) -> None:
    order_id = place(shop, ada)
    payment = paid(shop, ada, order_id)
    stripe_stand_in.complete(payment["provider_payment_id"])
    intent = stripe_stand_in.intents[payment["provider_payment_id"]]
    event = signed_event("payment_intent.succeeded", intent)
    headers = dict(event.headers)
    payload = event.payload
    if tamper == "missing":
        del headers["Stripe-Signature"]
    elif tamper == "wrong_secret":
        headers = signed_event("payment_intent.succeeded", intent, secret="whsec_other").headers
    elif tamper == "stale":
        old = signed_event("payment_intent.succeeded", intent, timestamp=int(time.time()) - 301)
        payload, headers = old.payload, old.headers
    elif tamper == "garbled":
        headers["Stripe-Signature"] = "t=abc,v1=nothex"
    else:
        payload = payload.replace(b"succeeded", b"succeeded ")
    response = shop.post(WEBHOOK_PATH, data=payload, headers=headers)
    assert_error(response, 400, "invalid_signature")
    assert Order.get_by_id(order_id).status == "pending"
    assert Payment.get().status == "requires_payment"
    assert ProviderEvent.select().count() == 0


def test_any_of_several_signatures_may_match_within_the_tolerance(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    payment = paid(shop, ada, place(shop, ada))
    event = stripe_stand_in.complete(payment["provider_payment_id"], "processing")
    stamp, good = event.headers["Stripe-Signature"].split(",")
    recent = signed_event("x", {}, timestamp=int(time.time()) - 290)  # another body: no match
    headers = {**event.headers, "Stripe-Signature": f"{stamp},v1={'0' * 64},{good},v0=abc"}
    assert json_body(deliver(shop, WebhookEvent(event.id, event.type, event.payload, headers)))
    assert Payment.get().status == "processing"
    assert recent.payload != event.payload


def test_failure_then_a_retry_with_the_same_intent_succeeds(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    payment = paid(shop, ada, order_id)
    intent_id = payment["provider_payment_id"]
    assert json_body(deliver(shop, stripe_stand_in.complete(intent_id, "failed")))["result"] == (
        "applied"
    )
    assert order_of(shop, ada, order_id)["payment"]["status"] == "failed"
    again = paid(shop, ada, order_id)  # the same intent: the customer tries another card
    assert (again["id"], again["provider_payment_id"], again["status"]) == (
        payment["id"], intent_id, "failed",
    )  # fmt: skip
    deliver(shop, stripe_stand_in.complete(intent_id, "processing"))
    deliver(shop, stripe_stand_in.complete(intent_id, "succeeded"))
    done = order_of(shop, ada, order_id)
    assert (done["status"], done["payment"]["status"]) == ("confirmed", "succeeded")
    user_id = done["user_id"]
    types = [t for t, _ in stream_events(f"user:{user_id}") if t.startswith("payment.")]
    assert types == ["payment.failed", "payment.succeeded"]
    assert stripe_stand_in.creates() == 1
    late = stripe_stand_in.complete(intent_id, "processing")  # an old word arriving late
    assert json_body(deliver(shop, late)) == {"result": "unchanged"}
    assert Payment.get().status == "succeeded"


def test_a_cancelled_intent_is_replaced_by_the_next_attempt(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    first = paid(shop, ada, order_id)
    deliver(shop, stripe_stand_in.complete(first["provider_payment_id"], "canceled"))
    assert Payment.get().status == "cancelled"
    second = paid(shop, ada, order_id)
    assert second["id"] == first["id"]
    assert second["provider_payment_id"] != first["provider_payment_id"]
    assert second["status"] == "requires_payment"
    assert Payment.get().attempt == 2
    assert stripe_stand_in.creates() == 2
    old = stripe_stand_in.complete(first["provider_payment_id"], "succeeded")
    assert json_body(deliver(shop, old)) == {"result": "ignored"}  # not ours any more
    assert Order.get_by_id(order_id).status == "pending"


def test_other_events_and_bodies(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    payment = paid(shop, ada, place(shop, ada))
    intent = stripe_stand_in.intents[payment["provider_payment_id"]]
    created = signed_event("payment_intent.created", intent)
    assert json_body(deliver(shop, created)) == {"result": "ignored"}
    charge = signed_event("payment_intent.succeeded", {"object": "charge", "id": "ch_1"})
    assert json_body(deliver(shop, charge)) == {"result": "ignored"}
    stranger = signed_event("payment_intent.succeeded", {**intent, "id": "pi_unknown"})
    assert json_body(deliver(shop, stranger)) == {"result": "ignored"}
    not_json = signed_event("x", {})
    body = b"not json"
    headers = {**not_json.headers}

    headers["Stripe-Signature"] = sign(
        body, secret=stripe_stand_in.settings()["STRIPE_WEBHOOK_SECRET"]
    )
    assert_error(shop.post(WEBHOOK_PATH, data=body, headers=headers), 400, "invalid_event")
    assert Payment.get().status == "requires_payment"


def test_a_payment_for_an_order_cancelled_meanwhile_leaves_the_order_cancelled(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(shop, ada)
    payment = paid(shop, ada, order_id)
    assert shop.post(f"{API}/orders/{order_id}/cancel", headers=ada).status_code == 200
    deliver(shop, stripe_stand_in.complete(payment["provider_payment_id"]))
    body = order_of(shop, ada, order_id)
    assert (body["status"], body["payment"]["status"]) == ("cancelled", "succeeded")


def test_the_webhook_is_not_rate_limited(
    make_app: Callable[..., Flask], stripe_stand_in: StripeStandIn
) -> None:
    app = make_app(**stripe_stand_in.settings(RATELIMIT_WRITES="2/minute"))
    client = app.test_client()
    for _ in range(4):
        event = signed_event("customer.created", {"object": "customer", "id": "cus_1"})
        assert client.post(WEBHOOK_PATH, data=event.payload, headers=event.headers).status_code == (
            200
        )


def test_without_configuration_paying_and_the_webhook_are_503(
    client: FlaskClient, user: dict[str, str]
) -> None:
    order_id = place(client, user)
    assert_error(pay(client, user, order_id), 503, "payments_not_configured")
    event = signed_event("payment_intent.succeeded", {})
    assert_error(deliver(client, event), 503, "payments_not_configured")


def test_orders_lists_carry_each_orders_payment(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    first, second, third = (place(shop, ada) for _ in range(3))
    one, three = paid(shop, ada, first), paid(shop, ada, third)
    listed = {o["id"]: o["payment"] for o in shop.get(f"{API}/orders", headers=ada).get_json()}
    assert listed[second] is None
    assert listed[first]["provider_payment_id"] == one["provider_payment_id"]
    assert listed[third]["id"] == three["id"]
    assert stripe_stand_in.creates() == 2


def test_concurrent_payments_of_one_order_make_one_row_and_one_intent(
    paying_app: Flask, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    order_id = place(paying_app.test_client(), ada)

    def attempt(_: int) -> tuple[int, Any]:
        with paying_app.app_context():
            response = paying_app.test_client().post(f"{API}/orders/{order_id}/pay", headers=ada)
            return response.status_code, response.get_json()["payment"]["id"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(attempt, range(4)))
    assert {status for status, _ in answers} == {201}
    assert len({payment_id for _, payment_id in answers}) == 1
    assert Payment.select().count() == 1
    assert stripe_stand_in.creates() == 1


def test_payment_events_are_recorded_for_subscribed_webhooks_in_the_same_transaction(
    shop: FlaskClient, ada: dict[str, str], stripe_stand_in: StripeStandIn
) -> None:
    WebhookEndpoint.create(url="https://hooks.example.test/in", events=["payment.*"], secret="s")
    order_id = place(shop, ada)
    payment = paid(shop, ada, order_id)
    assert (
        deliver(shop, stripe_stand_in.complete(payment["provider_payment_id"])).status_code == 200
    )
    deliveries = list(WebhookDelivery.select())
    assert [d.event_type for d in deliveries] == ["payment.succeeded"]
    assert deliveries[0].payload["order_id"] == order_id
    assert deliveries[0].payload["status"] == "succeeded"
    assert "client_secret" not in deliveries[0].payload
