"""A resource's event carries it exactly as a GET of it returns it, so the two never drift."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from backend.channels import ADMIN, PRODUCTS, user_channel
from tests.support.accounts import login, make_user
from tests.support.helpers import json_body, stream_events

API = "/api/v1"


@pytest.fixture
def ada(client: FlaskClient) -> dict[str, str]:
    make_user("ada@example.test")
    return login(client, "ada@example.test").headers


@pytest.fixture
def root(client: FlaskClient) -> dict[str, str]:
    make_user("root@example.test", role="admin")
    return login(client, "root@example.test").headers


def last_event(channel: str) -> tuple[str, dict[str, Any]]:
    return stream_events(channel)[-1]


def get(client: FlaskClient, path: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"{API}{path}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json_body(response)


def place(client: FlaskClient, headers: dict[str, str], product_id: int) -> dict[str, Any]:
    body = {"items": [{"product_id": product_id, "quantity": 2}], "note": "ring twice"}
    response = client.post(f"{API}/orders", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return json_body(response)


def test_each_product_event_equals_the_get_of_the_product(
    client: FlaskClient, root: dict[str, str], ada: dict[str, str]
) -> None:
    new = {"sku": "TEA", "name": "Green tea", "description": "Grassy.", "price": "4.5", "stock": 5}
    created = json_body(client.post(f"{API}/products", json=new, headers=root))
    path = f"/products/{created['id']}"
    assert last_event(PRODUCTS) == ("product.created", get(client, path, root))
    assert created == get(client, path, root)

    etag = client.get(f"{API}{path}").headers["ETag"]
    client.patch(f"{API}{path}", json={"name": "Sencha"}, headers={**root, "If-Match": etag})
    assert last_event(PRODUCTS) == ("product.updated", get(client, path, root))

    placed = place(client, ada, created["id"])  # stock taken: the description stays in the event
    stock_event = last_event(PRODUCTS)
    assert stock_event == ("product.updated", get(client, path, ada))
    assert (stock_event[1]["stock"], stock_event[1]["description"]) == (3, "Grassy.")

    client.post(f"{API}/orders/{placed['id']}/cancel", headers=ada)  # stock given back
    assert last_event(PRODUCTS) == ("product.updated", get(client, path, ada))

    etag = client.get(f"{API}{path}").headers["ETag"]
    client.delete(f"{API}{path}", headers={**root, "If-Match": etag})  # ordered once: soft
    deleted = last_event(ADMIN)  # admins see it in full; the public topic only its id
    assert deleted == ("product.deleted", get(client, path, root))
    assert deleted[1]["is_active"] is False
    assert last_event(PRODUCTS) == ("product.deleted", {"id": created["id"]})


def test_each_order_event_equals_the_get_of_the_order(
    client: FlaskClient, root: dict[str, str], ada: dict[str, str]
) -> None:
    product = json_body(
        client.post(
            f"{API}/products",
            json={"sku": "MUG", "name": "Mug", "price": "7.25", "stock": 9},
            headers=root,
        )
    )
    placed = place(client, ada, product["id"])
    path, owner = f"/orders/{placed['id']}", user_channel(placed["user_id"])
    assert placed == get(client, path, ada)
    assert last_event(owner) == ("order.created", placed)
    assert last_event(ADMIN) == ("order.created", placed)
    assert placed["items"][0]["quantity"] == 2  # the lines too, not a summary

    client.post(f"{API}{path}/status", json={"status": "confirmed"}, headers=root)
    now = get(client, path, root)
    assert now["status"] == "confirmed"
    assert now["user_id"] == placed["user_id"]  # what admins tell the owners apart by
    types = [kind for kind, _ in stream_events(ADMIN) if kind.startswith("order.")]
    assert types == ["order.created", "order.status_changed"]
    assert last_event(ADMIN) == ("order.status_changed", now)
    assert ("order.status_changed", now) in stream_events(owner)


def test_the_notification_event_equals_the_notification_as_listed(
    client: FlaskClient, root: dict[str, str], ada: dict[str, str]
) -> None:
    product = json_body(
        client.post(
            f"{API}/products",
            json={"sku": "CUP", "name": "Cup", "price": "3", "stock": 9},
            headers=root,
        )
    )
    placed = place(client, ada, product["id"])
    client.post(f"{API}/orders/{placed['id']}/status", json={"status": "confirmed"}, headers=root)
    [listed] = client.get(f"{API}/notifications", headers=ada).get_json()
    assert last_event(user_channel(placed["user_id"])) == ("notification.created", listed)
    assert listed["data"] == {"order_id": placed["id"], "status": "confirmed"}
