"""The catalog: listing, filters, ETags and admin writes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import AuditEvent, Order, OrderLine, Product, User
from tests.support.catalog import make_product
from tests.support.helpers import assert_error, json_body, stream_events

API = "/api/v1"


def names(response: object) -> list[str]:
    return [p["name"] for p in response.get_json()]  # type: ignore[attr-defined]


def test_anonymous_list_shows_active_products_with_pagination(client: FlaskClient) -> None:
    make_product("A", name="Apple")
    make_product("B", name="Banana", active=False)
    make_product("C", name="Cherry")
    response = client.get(f"{API}/products?page_size=1")
    assert names(response) == ["Apple"]
    assert json.loads(response.headers["X-Pagination"])["total"] == 2
    product = response.get_json()[0]
    assert set(product) == {
        "id", "sku", "name", "description", "price", "currency", "stock", "is_active",
        "image_file_id", "created_at", "updated_at",
    }  # fmt: skip
    assert product["price"] == "10.00"


def test_admins_also_see_inactive_products(client: FlaskClient, admin: dict[str, str]) -> None:
    make_product("A", name="Apple")
    make_product("B", name="Banana", active=False)
    assert names(client.get(f"{API}/products", headers=admin)) == ["Apple", "Banana"]
    hidden = Product.get(Product.sku == "B").id
    assert_error(client.get(f"{API}/products/{hidden}"), 404, "not_found")
    assert client.get(f"{API}/products/{hidden}", headers=admin).status_code == 200


def test_search_filters_and_sorting(client: FlaskClient) -> None:
    make_product("TEA-1", name="Green tea", price="4.50", stock=0)
    make_product("TEA-2", name="Black tea", price="3.00", description="100% leaf")
    make_product("COF-1", name="Coffee beans", price="12.00")
    assert names(client.get(f"{API}/products?q=tea&sort=-name")) == ["Green tea", "Black tea"]
    assert names(client.get(f"{API}/products?q=cof")) == ["Coffee beans"]
    assert names(client.get(f"{API}/products?q=100%25")) == ["Black tea"]
    assert names(client.get(f"{API}/products?q=%25")) == ["Black tea"]
    assert names(client.get(f"{API}/products?q=_")) == []
    assert names(client.get(f"{API}/products?q=' OR 1=1 --")) == []
    assert names(client.get(f"{API}/products?min_price=4&max_price=12&sort=price")) == [
        "Green tea", "Coffee beans",
    ]  # fmt: skip
    assert names(client.get(f"{API}/products?in_stock=true&sort=-price")) == [
        "Coffee beans", "Black tea",
    ]  # fmt: skip
    assert names(client.get(f"{API}/products?in_stock=false")) == ["Green tea"]


@pytest.mark.parametrize(
    "query",
    ["sort=password", "page=0", "page_size=1000", "min_price=-1", "min_price=1.234",
     "min_price=5&max_price=1", "in_stock=perhaps"],
)  # fmt: skip
def test_bad_list_queries_are_422(client: FlaskClient, query: str) -> None:
    assert_error(client.get(f"{API}/products?{query}"), 422, "validation_error")


def test_reads_still_work_without_redis(make_app: Callable[..., Flask]) -> None:
    make_app()
    make_product("A", name="Apple")
    offline = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    assert names(offline.get(f"{API}/products")) == ["Apple"]
    product_id = Product.get().id
    assert json_body(offline.get(f"{API}/products/{product_id}"))["name"] == "Apple"


def test_create_validates_and_refuses_duplicate_skus(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    body = {"sku": "MUG-1", "name": "Mug", "price": "7.50", "stock": 5, "currency": "EUR"}
    created = client.post(f"{API}/products", json=body, headers=admin)
    assert created.status_code == 201
    assert json_body(created)["price"] == "7.50"
    assert_error(client.post(f"{API}/products", json=body, headers=admin), 409, "sku_taken")
    assert stream_events("products")[0][0] == "product.created"
    assert AuditEvent.select().where(AuditEvent.action == "product.created").count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [({"price": "1.999"}, "price"), ({"price": "-1.00"}, "price"), ({"price": "NaN"}, "price"),
     ({"stock": -1}, "stock"), ({"stock": "5"}, "stock"), ({"currency": "euro"}, "currency"),
     ({"name": ""}, "name"), ({"colour": "red"}, "colour")],
)  # fmt: skip
def test_create_rejects_bad_fields(
    client: FlaskClient, admin: dict[str, str], change: dict[str, object], field: str
) -> None:
    body = {"sku": "X", "name": "X", "price": "1.00", **change}
    response = client.post(f"{API}/products", json=body, headers=admin)
    assert field in assert_error(response, 422, "validation_error")["errors"]["json"]


def test_writes_are_for_admins(client: FlaskClient, user: dict[str, str]) -> None:
    body = {"sku": "X", "name": "X", "price": "1.00"}
    assert_error(client.post(f"{API}/products", json=body, headers=user), 403, "forbidden")
    assert_error(client.post(f"{API}/products", json=body), 401, "unauthorized")


def test_get_has_an_etag_and_answers_304(client: FlaskClient) -> None:
    apple = make_product("A")
    first = client.get(f"{API}/products/{apple.id}")
    etag = first.headers["ETag"]
    again = client.get(f"{API}/products/{apple.id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert_error(client.get(f"{API}/products/999"), 404, "not_found")


def test_patch_needs_a_fresh_if_match(client: FlaskClient, admin: dict[str, str]) -> None:
    apple = make_product("A")
    url = f"{API}/products/{apple.id}"
    assert_error(client.patch(url, json={"stock": 1}, headers=admin), 428, "precondition_required")
    bad = client.patch(url, json={"stock": 1}, headers={**admin, "If-Match": "garbage"})
    assert_error(bad, 412, "precondition_failed")
    etag = client.get(url).headers["ETag"]
    ok = client.patch(url, json={"stock": 1, "name": "Apple"}, headers={**admin, "If-Match": etag})
    assert json_body(ok)["stock"] == 1
    stale = client.patch(url, json={"stock": 2}, headers={**admin, "If-Match": etag})
    assert_error(stale, 412, "precondition_failed")
    assert ("product.updated", {**stream_events("products")[-1][1], "stock": 1}) == stream_events(
        "products"
    )[-1]


def test_patch_to_a_taken_sku_is_409(client: FlaskClient, admin: dict[str, str]) -> None:
    make_product("A")
    banana = make_product("B")
    url = f"{API}/products/{banana.id}"
    etag = client.get(url).headers["ETag"]
    response = client.patch(url, json={"sku": "A"}, headers={**admin, "If-Match": etag})
    assert_error(response, 409, "sku_taken")


def test_delete_is_hard_unless_the_product_was_ordered(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    unsold = make_product("A")
    sold = make_product("B")
    order = Order.create(user=User.get(), total="10.00", currency="USD")
    OrderLine.create(
        order=order, product=sold, sku="B", name="B", unit_price="10.00", quantity=1,
        line_total="10.00",
    )  # fmt: skip
    for product in (unsold, sold):
        url = f"{API}/products/{product.id}"
        assert_error(client.delete(url, headers=admin), 428, "precondition_required")
        etag = client.get(url, headers=admin).headers["ETag"]
        assert client.delete(url, headers={**admin, "If-Match": etag}).status_code == 204
    assert Product.get_or_none(Product.id == unsold.id) is None
    assert Product.get_by_id(sold.id).is_active is False
    assert [e[0] for e in stream_events("products")] == ["product.deleted", "product.deleted"]
