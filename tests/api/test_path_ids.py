"""Ids in paths beyond what a database id can hold are 404s, never 500s."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from backend.api.converters import MAX_ID
from tests.support.accounts import login, make_user
from tests.support.helpers import assert_error

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/products/{HUGE}",
        f"/api/v1/orders/{HUGE}",
        f"/api/v1/files/{HUGE}",
        f"/api/v1/files/{HUGE}/content",
        f"/api/v1/users/{HUGE}",
        f"/api/v1/products/{MAX_ID + 1}",
        "/api/v1/products/0",
    ],
)
def test_an_id_no_row_can_have_is_not_found(client: FlaskClient, path: str) -> None:
    make_user("root@example.test", role="admin")
    admin = login(client, "root@example.test").headers
    assert_error(client.get(path, headers=admin), 404, "not_found")
    assert_error(client.get(path), 404, "not_found")


def test_the_largest_id_reaches_the_database_and_is_not_found(client: FlaskClient) -> None:
    assert_error(client.get(f"/api/v1/products/{MAX_ID}"), 404, "not_found")


def test_the_document_states_the_bounds(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    [parameter] = document["paths"]["/api/v1/products/{product_id}"]["parameters"]
    assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}
