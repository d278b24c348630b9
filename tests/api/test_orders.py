"""Orders: placement rules, stock, idempotency keys, the status flow, events and notifications."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from backend.api.idempotency import request_fingerprint
from backend.models import (
    AuditEvent,
    IdempotencyRecord,
    Notification,
    Order,
    Product,
    User,
    utcnow,
)
from backend.services import idempotency
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.helpers import assert_error, json_body, stream_events

API = "/api/v1"


@pytest.fixture
def ada(client: FlaskClient) -> dict[str, str]:
    make_user("ada@example.test")
    return login(client, "ada@example.test").headers


def order(
    client: FlaskClient, headers: dict[str, str], *items: tuple[int, int], **extra: str
) -> TestResponse:
    body = {"items": [{"product_id": p, "quantity": q} for p, q in items]}
    return client.post(f"{API}/orders", json=body, headers={**headers, **extra})


def stock(product_id: int) -> int:
    return int(Product.get_by_id(product_id).stock)


def test_placing_an_order_takes_stock_and_copies_prices(
    client: FlaskClient, ada: dict[str, str]
) -> None:
    tea = make_product("TEA", price="4.50", stock=10)
    mug = make_product("MUG", price="7.25", stock=3)
    response = order(client, ada, (tea.id, 2), (mug.id, 1), (tea.id, 1))
    assert response.status_code == 201
    body = json_body(response)
    assert body["status"] == "pending"
    assert body["total"] == "20.75"
    assert body["currency"] == "USD"
    assert [(i["sku"], i["quantity"], i["unit_price"], i["line_total"]) for i in body["items"]] == [
        ("TEA", 3, "4.50", "13.50"), ("MUG", 1, "7.25", "7.25"),
    ]  # fmt: skip
    assert (stock(tea.id), stock(mug.id)) == (7, 2)
    Product.update(price="99.00").execute()
    again = json_body(client.get(f"{API}/orders/{body['id']}", headers=ada))
    assert again["items"][0]["unit_price"] == "4.50"


def test_order_events_go_to_the_owner_and_admins_and_stock_to_the_catalog(
    client: FlaskClient, ada: dict[str, str]
) -> None:
    tea = make_product("TEA", stock=5)
    placed = json_body(order(client, ada, (tea.id, 2)))
    user_id = placed["user_id"]
    assert [e[0] for e in stream_events(f"user:{user_id}")] == ["order.created"]
    assert [e[0] for e in stream_events("admin") if e[0].startswith("order.")] == ["order.created"]
    assert [(t, d["stock"]) for t, d in stream_events("products")] == [("product.updated", 3)]


def test_insufficient_stock_lists_each_short_product_and_changes_nothing(
    client: FlaskClient, ada: dict[str, str]
) -> None:
    tea = make_product("TEA", stock=5)
    mug = make_product("MUG", stock=1)
    cup = make_product("CUP", stock=0)
    response = order(client, ada, (tea.id, 2), (mug.id, 2), (cup.id, 1))
    body = assert_error(response, 409, "insufficient_stock")
    assert body["errors"]["items"] == [
        {"product_id": mug.id, "requested": 2, "available": 1},
        {"product_id": cup.id, "requested": 1, "available": 0},
    ]
    assert (stock(tea.id), stock(mug.id), stock(cup.id)) == (5, 1, 0)
    assert Order.select().count() == 0
    assert stream_events("products") == []


@pytest.mark.parametrize(
    "items",
    [[{"product_id": 1, "quantity": 0}], [{"product_id": 1, "quantity": -1}],
     [{"product_id": 1, "quantity": "2"}], [{"product_id": 1, "quantity": 1.5}],
     [{"product_id": 1, "quantity": 1001}], [{"product_id": "x", "quantity": 1}],
     [{"product_id": 1}], [], [{"product_id": 1, "quantity": 1}] * 10_000, "tea"],
)  # fmt: skip
def test_bad_items_are_422(client: FlaskClient, ada: dict[str, str], items: object) -> None:
    make_product("TEA", stock=5)
    response = client.post(f"{API}/orders", json={"items": items}, headers=ada)
    assert "items" in assert_error(response, 422, "validation_error")["errors"]["json"]
    assert stock(Product.get().id) == 5


def test_merged_quantities_above_the_limit_are_refused(
    client: FlaskClient, ada: dict[str, str]
) -> None:
    tea = make_product("TEA", stock=5000)
    assert_error(order(client, ada, (tea.id, 600), (tea.id, 600)), 422, "validation_error")


def test_unknown_or_inactive_products_are_refused(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA")
    old = make_product("OLD", active=False)
    body = assert_error(
        order(client, ada, (tea.id, 1), (old.id, 1), (999, 1)), 422, "unknown_product"
    )
    assert body["errors"]["json"]["items"]["product_ids"] == [old.id, 999]
    assert stock(tea.id) == 10


def test_mixed_currencies_are_refused(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA")
    euro = make_product("EUR", currency="EUR")
    assert_error(order(client, ada, (tea.id, 1), (euro.id, 1)), 422, "mixed_currency")


def test_orders_are_private(
    client: FlaskClient, ada: dict[str, str], admin: dict[str, str]
) -> None:
    tea = make_product("TEA")
    mine = json_body(order(client, ada, (tea.id, 1)))
    make_user("bob@example.test")
    bob = login(client, "bob@example.test").headers
    assert_error(client.get(f"{API}/orders/{mine['id']}", headers=bob), 404, "not_found")
    assert_error(client.post(f"{API}/orders/{mine['id']}/cancel", headers=bob), 404, "not_found")
    assert client.get(f"{API}/orders", headers=bob).get_json() == []
    assert client.get(f"{API}/orders/{mine['id']}", headers=admin).status_code == 200
    listed = client.get(f"{API}/orders?user_id={mine['user_id']}", headers=admin)
    assert [o["id"] for o in listed.get_json()] == [mine["id"]]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1


def test_owner_can_cancel_and_stock_comes_back(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA", stock=5)
    placed = json_body(order(client, ada, (tea.id, 3)))
    cancelled = client.post(f"{API}/orders/{placed['id']}/cancel", headers=ada)
    assert json_body(cancelled)["status"] == "cancelled"
    assert stock(tea.id) == 5
    again = client.post(f"{API}/orders/{placed['id']}/cancel", headers=ada)
    assert_error(again, 409, "invalid_transition")
    assert stock(tea.id) == 5
    note = Notification.get()
    assert (note.kind, note.data) == (
        "order.status_changed",
        {"order_id": placed["id"], "status": "cancelled"},
    )
    assert "notification.created" in [e[0] for e in stream_events(f"user:{placed['user_id']}")]


def test_admin_moves_orders_along_the_flow_only(
    client: FlaskClient, ada: dict[str, str], admin: dict[str, str]
) -> None:
    tea = make_product("TEA")
    placed = json_body(order(client, ada, (tea.id, 1)))
    url = f"{API}/orders/{placed['id']}/status"
    assert_error(
        client.post(url, json={"status": "shipped"}, headers=admin), 409, "invalid_transition"
    )
    assert_error(client.post(url, json={"status": "confirmed"}, headers=ada), 403, "forbidden")
    assert_error(client.post(url, json={"status": "lost"}, headers=admin), 422, "validation_error")
    for status in ("confirmed", "shipped", "delivered"):
        assert (
            json_body(client.post(url, json={"status": status}, headers=admin))["status"] == status
        )
    cancel = client.post(f"{API}/orders/{placed['id']}/cancel", headers=ada)
    assert_error(cancel, 409, "invalid_transition")
    assert Notification.select().count() == 3
    assert AuditEvent.select().where(AuditEvent.action == "order.status_changed").count() == 3
    kinds = [e[0] for e in stream_events(f"user:{placed['user_id']}")]
    assert kinds.count("order.status_changed") == 3


# --- Idempotency-Key ----------------------------------------------------------------------


def test_the_same_key_replays_the_first_response_and_creates_nothing(
    client: FlaskClient, ada: dict[str, str]
) -> None:
    tea = make_product("TEA", stock=5)
    first = order(client, ada, (tea.id, 2), **{"Idempotency-Key": "k-1"})
    second = order(client, ada, (tea.id, 2), **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Order.select().count() == 1
    assert stock(tea.id) == 3


def test_a_key_reused_with_another_body_is_422(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA", stock=5)
    order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k-1"})
    other = order(client, ada, (tea.id, 2), **{"Idempotency-Key": "k-1"})
    assert_error(other, 422, "idempotency_key_reused")


def test_keys_are_per_user(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA", stock=5)
    make_user("bob@example.test")
    bob = login(client, "bob@example.test").headers
    order(client, ada, (tea.id, 1), **{"Idempotency-Key": "same"})
    assert order(client, bob, (tea.id, 1), **{"Idempotency-Key": "same"}).status_code == 201
    assert Order.select().count() == 2


def test_a_failed_first_attempt_is_replayed_too(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA", stock=1)
    first = order(client, ada, (tea.id, 2), **{"Idempotency-Key": "k"})
    Product.update(stock=10).execute()
    second = order(client, ada, (tea.id, 2), **{"Idempotency-Key": "k"})
    assert first.status_code == second.status_code == 409
    assert first.get_json() == second.get_json()


def test_invalid_requests_do_not_burn_the_key(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA", stock=5)
    bad = client.post(f"{API}/orders", json={"items": []}, headers={**ada, "Idempotency-Key": "k"})
    assert_error(bad, 422, "validation_error")
    assert IdempotencyRecord.select().count() == 0
    assert order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k"}).status_code == 201


def test_overlong_keys_are_refused(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA", stock=5)
    response = order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k" * 256})
    assert_error(response, 422, "validation_error")


def test_a_key_in_progress_elsewhere_is_409_after_waiting(
    app: Flask, client: FlaskClient, ada: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tea = make_product("TEA", stock=5)
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.2)
    user = User.get(User.email == "ada@example.test")
    with app.test_request_context(
        f"{API}/orders", method="POST", json={"items": [{"product_id": tea.id, "quantity": 1}]}
    ):
        claim = idempotency.begin(user=user, key="busy", request_hash=request_fingerprint())
    assert isinstance(claim, int)
    response = order(client, ada, (tea.id, 1), **{"Idempotency-Key": "busy"})
    assert_error(response, 409, "idempotency_in_progress")
    assert response.headers["Retry-After"] == "1"


def test_a_stale_claim_is_taken_over_without_a_second_order(
    client: FlaskClient, ada: dict[str, str]
) -> None:
    tea = make_product("TEA", stock=5)
    first = order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k"})
    # The first worker died after committing the order but before storing the response.
    IdempotencyRecord.update(
        response_status=None, response_body=None, locked_at=utcnow() - idempotency.STALE_AFTER * 2
    ).execute()
    second = order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k"})
    assert second.status_code == 201
    assert json_body(second)["id"] == json_body(first)["id"]
    assert Order.select().count() == 1
    assert stock(tea.id) == 4


def test_expired_keys_are_purged_and_can_be_used_again(
    app: Flask, client: FlaskClient, ada: dict[str, str]
) -> None:
    tea = make_product("TEA", stock=5)
    order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k"})
    IdempotencyRecord.update(expires_at=utcnow()).execute()
    assert idempotency.purge_expired() == 1
    assert order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k"}).status_code == 201
    assert Order.select().count() == 2


def test_an_expired_key_is_reclaimed_on_use(client: FlaskClient, ada: dict[str, str]) -> None:
    tea = make_product("TEA", stock=5)
    order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k"})
    IdempotencyRecord.update(expires_at=utcnow()).execute()
    Order.update(idempotency_key=None).execute()
    assert order(client, ada, (tea.id, 1), **{"Idempotency-Key": "k"}).status_code == 201
    assert Order.select().count() == 2
