"""The public `products` topic carries only what GET /products/{id} would show its reader."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.helpers import stream_events

API = "/api/v1"
NEW = {"sku": "HIDDEN-1", "name": "Hidden", "price": "1.00", "currency": "USD", "stock": 1}


def patch(client: FlaskClient, admin: dict[str, str], product_id: int, **changes: object) -> None:
    etag = client.get(f"{API}/products/{product_id}", headers=admin).headers["ETag"]
    response = client.patch(
        f"{API}/products/{product_id}", json=changes, headers={**admin, "If-Match": etag}
    )
    assert response.status_code == 200, response.data


def test_an_inactive_product_never_reaches_the_public_topic(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    created = client.post(f"{API}/products", json={**NEW, "is_active": False}, headers=admin)
    assert created.status_code == 201
    product_id = created.get_json()["id"]
    patch(client, admin, product_id, name="Still hidden", stock=5)
    assert stream_events("products") == []
    assert [kind for kind, _ in stream_events("admin")] == ["product.created", "product.updated"]


def test_a_deactivated_product_leaves_the_public_topic_with_its_id_alone(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    product = make_product("SHOWN-1")
    patch(client, admin, product.id, is_active=False, name="Secret new name")
    patch(client, admin, product.id, stock=99)
    assert stream_events("products") == [("product.deleted", {"id": product.id})]
    admin_events = stream_events("admin")
    assert [data["name"] for _, data in admin_events] == ["Secret new name", "Secret new name"]


def test_a_reactivated_product_comes_back_in_full(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    product = make_product("BACK-1", active=False)
    patch(client, admin, product.id, is_active=True)
    [(kind, data)] = stream_events("products")
    assert kind == "product.updated"
    assert data["is_active"] is True
    assert data == client.get(f"{API}/products/{product.id}").get_json()


def test_stock_returned_to_an_inactive_product_is_for_admins_only(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    product = make_product("GONE-1", stock=3)
    make_user("ada@example.test")
    ada = login(client, "ada@example.test").headers
    order = client.post(
        f"{API}/orders", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=ada
    )
    assert order.status_code == 201
    patch(client, admin, product.id, is_active=False)
    before = len(stream_events("products"))
    cancelled = client.post(f"{API}/orders/{order.get_json()['id']}/cancel", headers=ada)
    assert cancelled.status_code == 200
    assert len(stream_events("products")) == before
    stock_events = [data for kind, data in stream_events("admin") if kind == "product.updated"]
    assert stock_events[-1]["stock"] == 3
