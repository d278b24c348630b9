"""Models built from JSON: which events carry a resource, and which model parses it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from flet_backend_client import Event, Notification, Order, Payment, Product

PRODUCT = {
    "id": 7, "sku": "TEA-001", "name": "Green tea", "description": "Grassy.", "price": "5.50",
    "currency": "USD", "stock": 3, "is_active": True, "image_file_id": None,
    "created_at": "2026-12-01T10:00:00+00:00", "updated_at": "2026-12-01T11:00:00+00:00",
}  # fmt: skip
ORDER = {
    "id": 3, "user_id": 2, "status": "pending", "total": "11.00", "currency": "USD", "note": "",
    "items": [{"product_id": 7, "sku": "TEA-001", "name": "Green tea", "unit_price": "5.50",
               "quantity": 2, "line_total": "11.00"}],
    "created_at": "2026-12-01T10:00:00+00:00", "updated_at": "2026-12-01T10:00:00+00:00",
}  # fmt: skip
NOTIFICATION = {
    "id": 9, "kind": "order.status_changed", "title": "Your order is confirmed", "body": "",
    "data": {"order_id": 3}, "read_at": None, "created_at": "2026-12-01T10:00:00+00:00",
}  # fmt: skip


def event(type_: str, data: object) -> Event:
    return Event.from_sse("1700000000000-0", type_, json.dumps(data))


@pytest.mark.parametrize("type_", ["product.created", "product.updated", "product.deleted"])
def test_a_product_event_is_parsed_as_the_product_a_get_returns(type_: str) -> None:
    parsed = event(type_, PRODUCT).resource
    assert parsed == Product.from_json(PRODUCT)
    assert isinstance(parsed, Product)
    assert (parsed.description, parsed.price) == ("Grassy.", Decimal("5.50"))


def test_order_and_notification_events_are_parsed_by_their_models() -> None:
    order = event("order.status_changed", ORDER).resource
    assert order == Order.from_json(ORDER)
    assert isinstance(order, Order)
    assert order.items[0].quantity == 2
    assert event("notification.created", NOTIFICATION).resource == Notification.from_json(
        NOTIFICATION
    )


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("tick", {"id": 1}),
        ("stream.reset", {"channels": ["products"]}),
        ("job.progress", {"id": "abc", "progress": {"done": 1}}),
        ("product.updated", {"name": "no id"}),
        ("product", PRODUCT),
        ("product.updated", ["not", "an", "object"]),
    ],
)
def test_other_events_carry_no_resource(type_: str, data: object) -> None:
    assert event(type_, data).resource is None


def test_the_resource_is_parsed_once() -> None:
    first = event("product.updated", PRODUCT)
    assert first.resource is first.resource


def test_a_removal_notice_names_the_id_and_carries_no_resource() -> None:
    notice = event("product.deleted", {"id": 7})
    assert notice.removed_id == 7
    assert notice.resource is None
    assert event("product.deleted", PRODUCT).removed_id is None  # the admin's full copy
    assert event("product.updated", {"id": 7}).removed_id is None
    assert event("product.deleted", {"id": "7"}).removed_id is None


PAYMENT = {
    "id": 4, "order_id": 3, "provider": "stripe", "provider_payment_id": "pi_1",
    "status": "succeeded", "amount": "11.00", "currency": "USD",
    "created_at": "2026-12-01T10:00:00+00:00", "updated_at": "2026-12-01T10:05:00+00:00",
}  # fmt: skip


@pytest.mark.parametrize("type_", ["payment.succeeded", "payment.failed"])
def test_a_payment_event_is_parsed_as_an_orders_payment(type_: str) -> None:
    parsed = event(type_, PAYMENT).resource
    assert isinstance(parsed, Payment)
    assert parsed == Order.from_json({**ORDER, "payment": PAYMENT}).payment
    assert (parsed.amount, parsed.client_secret, parsed.is_paid, parsed.is_open) == (
        Decimal("11.00"), "", True, False,
    )  # fmt: skip
    assert Order.from_json(ORDER).payment is None
    assert Payment.from_json({**PAYMENT, "status": "processing"}).is_open
