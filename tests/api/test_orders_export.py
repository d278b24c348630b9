"""`POST /orders/export`: a CSV of the caller's orders, made by a worker, downloadable."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from decimal import Decimal

import pytest
from flask.testing import FlaskClient

from backend.models import File, Job, Order, OrderLine, User
from backend.services.order_export import COLUMNS, escape_cell
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.files import API
from tests.support.helpers import assert_error, stream_events

pytestmark = pytest.mark.both_stores


def place(user: User, product_id: int, *, note: str = "", status: str = "pending") -> Order:
    order = Order.create(
        user=user, currency="USD", total=Decimal("20.00"), note=note, status=status
    )
    OrderLine.create(
        order=order, product=product_id, sku="S-1", name="=cmd|' /C calc'!A0",
        unit_price=Decimal("10.00"), quantity=2, line_total=Decimal("20.00"),
    )  # fmt: skip
    return order


def export(client: FlaskClient, headers: dict[str, str], run_worker: Callable[[], bool],
           **filters: object) -> tuple[Job, list[dict[str, str]]]:  # fmt: skip
    response = client.post(f"{API}/orders/export", json=filters, headers=headers)
    assert response.status_code == 202, response.data
    assert response.headers["Location"].endswith(f"/jobs/{response.get_json()['id']}")
    run_worker()
    job = Job.get_by_id(response.get_json()["id"])
    assert job.status == "succeeded", job.error
    download = client.get(f"{API}/files/{job.result['file_id']}/content", headers=headers)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    assert download.headers["Content-Disposition"].startswith("attachment;")
    return job, list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))


@pytest.fixture
def people(client: FlaskClient) -> dict[str, tuple[User, dict[str, str]]]:
    users = {name: make_user(f"{name}@example.test", role="admin" if name == "root" else "user")
             for name in ("alice", "bob", "root")}  # fmt: skip
    return {name: (user, login(client, user.email).headers) for name, user in users.items()}


def test_users_export_their_own_orders_with_formulas_defused(
    client: FlaskClient, people: dict[str, tuple[User, dict[str, str]]],
    run_worker: Callable[[], bool],
) -> None:  # fmt: skip
    (alice, alice_headers), (bob, bob_headers) = people["alice"], people["bob"]
    product = make_product("S-1")
    mine = [place(alice, product.id, note="+1 call me"), place(alice, product.id)]
    place(bob, product.id)
    job, rows = export(client, alice_headers, run_worker, user_id=bob.id)  # ignored for users
    assert job.result == {"file_id": job.result["file_id"], "orders": 2, "rows": 2}
    assert list(rows[0]) == COLUMNS
    assert [int(r["order_id"]) for r in rows] == [o.id for o in mine]
    assert {r["user_email"] for r in rows} == {"alice@example.test"}
    assert rows[0]["name"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["note"] == "'+1 call me"
    assert rows[0]["line_total"] == "20.00"
    record = File.get_by_id(job.result["file_id"])
    assert record.purpose == "export"
    assert record.expires_at is not None
    assert_error(
        client.get(f"{API}/files/{record.id}/content", headers=bob_headers), 404, "not_found"
    )
    kinds = [kind for kind, _ in stream_events(f"user:{alice.id}")]
    assert "job.progress" in kinds
    assert kinds[-1] == "job.succeeded"


def test_admins_export_everyone_or_filter(
    client: FlaskClient, people: dict[str, tuple[User, dict[str, str]]],
    run_worker: Callable[[], bool],
) -> None:  # fmt: skip
    (alice, _), (bob, _), (_, root_headers) = people["alice"], people["bob"], people["root"]
    product = make_product("S-1")
    place(alice, product.id)
    shipped = place(bob, product.id, status="shipped")
    _, everyone = export(client, root_headers, run_worker)
    assert len(everyone) == 2
    _, bobs = export(client, root_headers, run_worker, user_id=bob.id, status="shipped")
    assert [int(r["order_id"]) for r in bobs] == [shipped.id]
    _, none = export(client, root_headers, run_worker, created_to="2000-01-01T00:00:00+00:00")
    assert none == []


def test_export_filters_are_validated(
    client: FlaskClient, people: dict[str, tuple[User, dict[str, str]]]
) -> None:
    headers = people["alice"][1]
    response = client.post(f"{API}/orders/export", json={"status": "lost"}, headers=headers)
    assert "status" in assert_error(response, 422, "validation_error")["errors"]["json"]
    assert_error(client.post(f"{API}/orders/export"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("plain", "plain"), (None, ""), (Decimal("-5.00"), "'-5.00"), (3, "3")],
)  # fmt: skip
def test_formula_cells_are_escaped(value: object, expected: str) -> None:
    assert escape_cell(value) == expected
