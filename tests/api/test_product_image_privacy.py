"""A product image is public only while an active product shows it."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from backend.models import Product
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.files import API, image_bytes, upload
from tests.support.helpers import assert_error, json_body

pytestmark = pytest.mark.both_stores


def uploaded_product_image(client: FlaskClient, admin: dict[str, str]) -> dict[str, Any]:
    response = upload(client, admin, image_bytes(), "p.png", "image/png", purpose="product_image")
    body: dict[str, Any] = json_body(response)
    return body


def shown_image(client: FlaskClient, admin: dict[str, str]) -> tuple[int, int]:
    """An admin's uploaded image attached to a new product: (file id, product id)."""
    image = uploaded_product_image(client, admin)
    product = make_product("IMG-PRIV")
    Product.update(image_file_id=image["id"]).where(Product.id == product.id).execute()
    return image["id"], product.id


def test_an_unattached_product_image_is_not_public(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    image = uploaded_product_image(client, admin)
    assert_error(client.get(f"{API}/files/{image['id']}"), 404, "not_found")
    assert_error(client.get(f"{API}/files/{image['id']}/content"), 404, "not_found")
    owner_view = client.get(f"{API}/files/{image['id']}/content", headers=admin)
    assert owner_view.status_code == 200
    assert owner_view.headers["Cache-Control"] == "private, no-cache"


def test_an_inactive_products_image_is_private_again(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    file_id, product_id = shown_image(client, admin)
    shown = client.get(f"{API}/files/{file_id}/content")
    assert shown.status_code == 200
    assert shown.headers["Cache-Control"] == "public, no-cache"

    Product.update(is_active=False).where(Product.id == product_id).execute()
    assert_error(client.get(f"{API}/files/{file_id}"), 404, "not_found")
    assert_error(client.get(f"{API}/files/{file_id}/content"), 404, "not_found")
    assert_error(client.get(f"{API}/files/{file_id}/content?w=160"), 404, "not_found")
    make_user("eve@example.test")
    eve = login(client, "eve@example.test").headers
    assert_error(client.get(f"{API}/files/{file_id}/content", headers=eve), 404, "not_found")
    admin_view = client.get(f"{API}/files/{file_id}/content", headers=admin)
    assert admin_view.status_code == 200
    assert admin_view.headers["Cache-Control"] == "private, no-cache"
