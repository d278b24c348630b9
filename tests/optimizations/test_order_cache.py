"""An owner's `GET /orders/{id}` served again from the process's kept answer (order_cache).

Two app instances on one database and one Redis stand for two gunicorn workers.
A row changed behind the services' back (no invalidation) shows what is served
from the kept answer; every write through the services must be seen at once,
in every process, and every refusal stays the main path's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient

from backend import cache
from backend.models import Order, User
from backend.optimizations import order_cache
from backend.redis_store import get_redis
from backend.services import orders
from tests.support.accounts import Login, login, make_user
from tests.support.catalog import make_product
from tests.support.helpers import assert_error, json_body
from tests.support.stripe_stand_in import WEBHOOK_PATH, StripeStandIn

API = "/api/v1"


@pytest.fixture
def workers(make_app: Callable[..., Flask]) -> tuple[FlaskClient, FlaskClient]:
    """Two app instances with the optimisation layer, as two processes would run."""
    first, second = make_app(OPTIMIZATIONS=True), make_app(OPTIMIZATIONS=True)
    return first.test_client(), second.test_client()


@pytest.fixture
def shop(workers: tuple[FlaskClient, FlaskClient]) -> dict[str, Any]:
    """Ada with an order placed through the API, and a signed-in admin."""
    first, _ = workers
    make_user("ada@example.test")
    make_user("root@example.test", role="admin")
    make_product("LAMP", price="9.50", stock=5)
    ada = login(first, "ada@example.test")
    order_id = place(first, ada, quantity=2)
    return {"ada": ada, "admin": login(first, "root@example.test"), "order_id": order_id}


def place(client: FlaskClient, session: Login, *, quantity: int) -> int:
    """Place an order of the first product through the API; return its id."""
    body = {"items": [{"product_id": 1, "quantity": quantity}]}
    placed = client.post(f"{API}/orders", headers=session.headers, json=body)
    assert placed.status_code == 201, placed.data
    return int(json_body(placed)["id"])


def read(client: FlaskClient, session: Login, order_id: int, **headers: str) -> Any:
    """GET the order with `session`'s token."""
    return client.get(f"{API}/orders/{order_id}", headers={**session.headers, **headers})


def note_behind_the_services(order_id: int, note: str) -> None:
    """Change the order's row directly: nothing is invalidated."""
    Order.update(note=note).where(Order.id == order_id).execute()


def warm(client: FlaskClient, session: Login, order_id: int) -> Any:
    """Read twice (the first notes the session as seen and goes through the view)."""
    read(client, session, order_id)
    return read(client, session, order_id)


def test_the_owners_second_read_is_the_kept_answer(
    workers: tuple[FlaskClient, FlaskClient], shop: dict[str, Any]
) -> None:
    first, _ = workers
    ada, order_id = shop["ada"], shop["order_id"]
    fresh = warm(first, ada, order_id)
    note_behind_the_services(order_id, "changed behind its back")
    again = read(first, ada, order_id)
    assert again.status_code == 200
    assert again.get_data() == fresh.get_data()  # the kept bytes, not the row
    assert again.headers["Content-Type"] == "application/json"
    with first.application.app_context():
        cache.invalidate(orders.cache_namespace(order_id))
    assert json_body(read(first, ada, order_id))["note"] == "changed behind its back"


def test_a_status_change_through_another_process_is_seen_at_once(
    workers: tuple[FlaskClient, FlaskClient], shop: dict[str, Any]
) -> None:
    first, second = workers
    ada, admin, order_id = shop["ada"], shop["admin"], shop["order_id"]
    assert json_body(warm(first, ada, order_id))["status"] == "pending"
    changed = second.post(
        f"{API}/orders/{order_id}/status", headers=admin.headers, json={"status": "confirmed"}
    )
    assert changed.status_code == 200, changed.data
    assert json_body(read(first, ada, order_id))["status"] == "confirmed"
    cancelled = second.post(f"{API}/orders/{order_id}/cancel", headers=ada.headers)
    assert cancelled.status_code == 200, cancelled.data
    assert json_body(read(first, ada, order_id))["status"] == "cancelled"


def test_a_revoked_session_and_a_deactivated_account_are_refused_on_the_next_read(
    workers: tuple[FlaskClient, FlaskClient], shop: dict[str, Any]
) -> None:
    first, second = workers
    ada, admin, order_id = shop["ada"], shop["admin"], shop["order_id"]
    other = login(first, "ada@example.test", device="phone")
    warm(first, ada, order_id)
    warm(first, other, order_id)
    assert second.post(f"{API}/auth/logout", headers=ada.headers).status_code == 204
    assert_error(read(first, ada, order_id), 401, "token_revoked")
    assert read(first, other, order_id).status_code == 200
    ada_id = User.get(User.email == "ada@example.test").id
    deactivated = second.patch(
        f"{API}/users/{ada_id}", headers=admin.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.data
    assert read(first, other, order_id).status_code == 401


def test_only_the_owner_is_served_from_the_kept_answer(
    workers: tuple[FlaskClient, FlaskClient], shop: dict[str, Any]
) -> None:
    first, _ = workers
    ada, admin, order_id = shop["ada"], shop["admin"], shop["order_id"]
    make_user("bob@example.test")
    bob = login(first, "bob@example.test")
    kept = warm(first, ada, order_id)
    for _ in range(2):
        assert_error(read(first, bob, order_id), 404, "not_found")
    note_behind_the_services(order_id, "the admin reads the row")
    assert json_body(warm(first, admin, order_id))["note"] == "the admin reads the row"
    assert read(first, ada, order_id).get_data() != kept.get_data()  # the admin's read kept it


def test_a_lost_invalidation_is_outlived(
    workers: tuple[FlaskClient, FlaskClient], shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = workers
    ada, order_id = shop["ada"], shop["order_id"]
    monkeypatch.setattr(order_cache, "MAX_AGE_SECONDS", 0.0)
    warm(first, ada, order_id)
    note_behind_the_services(order_id, "seen once the answer is too old")
    assert json_body(read(first, ada, order_id))["note"] == "seen once the answer is too old"


def test_a_flushed_redis_makes_a_new_version_and_the_row_is_read(
    workers: tuple[FlaskClient, FlaskClient], shop: dict[str, Any]
) -> None:
    first, _ = workers
    ada, order_id = shop["ada"], shop["order_id"]
    warm(first, ada, order_id)
    note_behind_the_services(order_id, "after the flush")
    with first.application.app_context():
        get_redis().flushdb()  # sessions, roles and versions gone: the database answers
    assert json_body(warm(first, ada, order_id))["note"] == "after the flush"


def test_a_full_cache_starts_again(
    workers: tuple[FlaskClient, FlaskClient], shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = workers
    ada, order_id = shop["ada"], shop["order_id"]
    monkeypatch.setattr(order_cache, "MAX_ENTRIES", 1)
    warm(first, ada, order_id)
    warm(first, ada, place(first, ada, quantity=1))  # the first order's answer made room
    note_behind_the_services(order_id, "read again")
    assert json_body(read(first, ada, order_id))["note"] == "read again"


def test_without_redis_the_view_answers(
    make_app: Callable[..., Flask], shop: dict[str, Any]
) -> None:
    lost = make_app(OPTIMIZATIONS=True, REDIS_URL="redis://127.0.0.1:9/0").test_client()
    ada, order_id = shop["ada"], shop["order_id"]
    for _ in range(2):
        assert json_body(read(lost, ada, order_id))["id"] == order_id


def test_a_payments_progress_is_seen_at_once(
    make_app: Callable[..., Flask], stripe_stand_in: StripeStandIn
) -> None:
    client = make_app(OPTIMIZATIONS=True, **stripe_stand_in.settings()).test_client()
    make_user("ada@example.test")
    make_product("LAMP", price="9.50", stock=5)
    ada = login(client, "ada@example.test")
    order_id = place(client, ada, quantity=1)
    assert json_body(warm(client, ada, order_id))["payment"] is None
    paying = client.post(f"{API}/orders/{order_id}/pay", headers=ada.headers)
    assert paying.status_code == 201, paying.data
    assert json_body(read(client, ada, order_id))["payment"]["status"] == "requires_payment"
    intent_id = json_body(paying)["payment"]["provider_payment_id"]
    event = stripe_stand_in.complete(intent_id, "failed")
    assert client.post(WEBHOOK_PATH, data=event.payload, headers=event.headers).status_code == 200
    assert json_body(read(client, ada, order_id))["payment"]["status"] == "failed"


def test_only_a_whole_200_answer_is_kept() -> None:
    kept = order_cache.OrderCache()
    kept.keep(1, b"v1", Response(status=304))
    kept.keep(2, b"v1", Response(iter([b"{}"]), mimetype="application/json"))  # streamed
    assert kept.entries == {}
    kept.keep(3, b"v1", Response(b'{"user_id": 7}', mimetype="application/json"))
    found = kept.fresh(3, b"v1")
    assert found is not None
    assert found.owner_id == 7
    assert kept.fresh(3, b"v2") is None
    assert kept.fresh(3, None) is None
