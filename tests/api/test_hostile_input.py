"""What a fuzzer sends gets a 4xx in the error shape: bodies, numbers, nesting, repeats, pages."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from backend.api.blueprint import MAX_PAGE
from backend.api.parsing import MAX_JSON_DEPTH, loads_exact
from backend.models import Product, User
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.helpers import assert_error

API = "/api/v1"


def post_raw(client: FlaskClient, path: str, body: str, headers: dict[str, str]) -> TestResponse:
    return client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})


def product_body(price: str) -> str:
    # The price as a bare JSON number, written by hand so nothing rounds it first.
    fields = '"sku": "EXACT-1", "name": "Exact", "currency": "USD", "stock": 1'
    return f'{{{fields}, "price": {price}}}'


def test_a_json_number_price_keeps_every_digit(client: FlaskClient, admin: dict[str, str]) -> None:
    response = post_raw(client, f"{API}/products", product_body("19.99"), admin)
    assert response.status_code == 201, response.data
    assert Product.get().price == Decimal("19.99")


@pytest.mark.parametrize("price", ["1e400", "1e-400", "19.999", "-1"])
def test_prices_that_overflow_underflow_or_lose_digits_are_refused(
    client: FlaskClient, admin: dict[str, str], price: str
) -> None:
    response = post_raw(client, f"{API}/products", product_body(price), admin)
    body = assert_error(response, 422, "validation_error")
    assert "price" in json.dumps(body["errors"])
    assert Product.select().count() == 0


@pytest.mark.parametrize(
    "document",
    [
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"email": NaN, "password": Infinity}',
        '{"email": ' + "9" * 5000 + "}",
        '{"email": "a@b.c", "password": ',
        "\udcff",
    ],
)
def test_json_that_is_too_deep_too_long_or_not_json_is_a_400(
    client: FlaskClient, document: str
) -> None:
    data = document.encode("utf-8", "surrogateescape")
    response = client.post(f"{API}/auth/login", data=data, content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_depth_ignores_brackets_inside_strings() -> None:
    text = json.dumps({"note": "[" * 500 + '\\"{' * 100})
    assert loads_exact(text) == json.loads(text)


def test_an_order_for_a_product_id_no_row_can_have_is_refused(client: FlaskClient) -> None:
    make_user("ada@example.test")
    ada = login(client, "ada@example.test").headers
    body = f'{{"items": [{{"product_id": {2**70}, "quantity": 1}}]}}'
    response = post_raw(client, f"{API}/orders", body, ada)
    assert response.status_code in (404, 409, 422), response.data


def test_a_single_valued_query_parameter_given_twice_is_refused(client: FlaskClient) -> None:
    make_product("TWICE-1")
    body = assert_error(
        client.get(f"{API}/products?sort=name&sort=-price"), 422, "validation_error"
    )
    assert "sort" in json.dumps(body["errors"])
    assert client.get(f"{API}/products?sort=name").status_code == 200


@pytest.mark.parametrize("page", [str(MAX_PAGE + 1), str(10**20), "abc", "0", "1.5"])
def test_pages_beyond_the_bound_or_not_a_number_are_refused(client: FlaskClient, page: str) -> None:
    body = assert_error(client.get(f"{API}/products?page={page}"), 422, "validation_error")
    assert "page" in json.dumps(body["errors"])


def test_the_last_allowed_page_is_empty_not_an_error(client: FlaskClient) -> None:
    response = client.get(f"{API}/products?page={MAX_PAGE}")
    assert response.status_code == 200
    assert response.get_json() == []


def test_the_document_bounds_the_page(client: FlaskClient) -> None:
    document = client.get(f"{API}/openapi.json").get_json()
    parameters = document["paths"][f"{API}/products"]["get"]["parameters"]
    [page] = [p for p in parameters if p["name"] == "page"]
    assert page["schema"]["maximum"] == MAX_PAGE


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "a\\u0000@example.test", "password": "x"}',
        '{"email\\u0000": "a@example.test", "password": "x"}',
        '{"items": [{"note": ["\\u0000"]}]}',
    ],
)
def test_json_text_with_a_nul_is_a_400(client: FlaskClient, body: str) -> None:
    response = client.post(f"{API}/auth/login", data=body, content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_an_escaped_backslash_before_u0000_is_plain_text(client: FlaskClient) -> None:
    body = '{"email": "a\\\\u0000@example.test", "password": "not the password"}'
    response = client.post(f"{API}/auth/login", data=body, content_type="application/json")
    assert response.status_code in (401, 422)


@pytest.mark.parametrize(
    "path", ["/api/v1/products?q=%00", "/api/v1/jobs/%00", "/api/v1/products?%00=1"]
)
def test_a_nul_in_the_url_is_a_400(client: FlaskClient, path: str) -> None:
    make_user("ada@example.test")
    ada = login(client, "ada@example.test").headers
    assert_error(client.get(path, headers=ada), 400, "bad_request")


def test_a_nul_in_a_form_field_is_a_400(client: FlaskClient, admin: dict[str, str]) -> None:
    import io

    data = {"file": (io.BytesIO(b"a,b\n"), "a.csv", "text/csv"), "purpose": "x\x00"}
    response = client.post(
        f"{API}/files", data=data, headers=admin, content_type="multipart/form-data"
    )
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_is_active_takes_json_booleans_only(
    client: FlaskClient, admin: dict[str, str], value: object
) -> None:
    # 1 == True in Python, so a `truthy={True}` set took 1 and 0 (the fuzzer's find).
    target = make_user("someone@example.test")
    product = make_product("BOOL-1")
    user_change = client.patch(f"{API}/users/{target.id}", json={"is_active": value}, headers=admin)
    assert_error(user_change, 422, "validation_error")
    created = client.post(
        f"{API}/products", headers=admin,
        json={"sku": "BOOL-2", "name": "Flag", "price": "1.00", "is_active": value},
    )  # fmt: skip
    assert_error(created, 422, "validation_error")
    etag = client.get(f"{API}/products/{product.id}", headers=admin).headers["ETag"]
    product_change = client.patch(
        f"{API}/products/{product.id}", json={"is_active": value},
        headers={**admin, "If-Match": etag},
    )  # fmt: skip
    assert_error(product_change, 422, "validation_error")
    assert User.get_by_id(target.id).is_active
    assert Product.get_by_id(product.id).is_active
