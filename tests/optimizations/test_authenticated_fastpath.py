"""The authenticated fast path (backend.optimizations.authenticated) answers as the main path.

Every test runs with the optimisation layer on and off. Two app instances on one
database and one Redis stand for two gunicorn workers: what one of them revokes
or changes, the other refuses or re-checks on its very next request, even after
it has verified (and kept) the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token

from backend.api.security import FAST_VERIFIER
from backend.models import AuthSession, Order, OrderLine, Payment, Product, User
from backend.optimizations.authenticated import (
    MAX_SEEN_SESSIONS,
    MAX_VERIFIED_TOKENS,
    SeenSessions,
    TokenVerifier,
    active_user,
    caller_and_order,
)
from backend.services import sessions
from tests.support.accounts import PASSWORD, Login, login, make_user
from tests.support.helpers import assert_error, json_body

API = "/api/v1"
NEW_PASSWORD = "another horse battery staple"


@pytest.fixture(params=[True, False], ids=["layer-on", "layer-off"])
def optimized(request: pytest.FixtureRequest) -> bool:
    """Whether the optimisation layer is installed."""
    return bool(request.param)


@pytest.fixture
def workers(make_app: Callable[..., Flask], optimized: bool) -> tuple[FlaskClient, FlaskClient]:
    """Two app instances sharing the database and Redis, as two processes would."""
    first, second = make_app(OPTIMIZATIONS=optimized), make_app(OPTIMIZATIONS=optimized)
    assert (FAST_VERIFIER in first.extensions) is optimized
    return first.test_client(), second.test_client()


def place_order(user: User) -> Order:
    """Create an order of `user` with two lines."""
    product = Product.create(
        sku=f"SKU-{user.id}", name="Lamp", description="", price="9.50", stock=5
    )
    order = Order.create(user=user, total="19.00", currency="EUR", note="ring twice")
    for _ in range(2):
        OrderLine.create(
            order=order, product=product, sku=product.sku, name="Lamp", unit_price="9.50",
            quantity=1, line_total="9.50",
        )  # fmt: skip
    return order


def me(client: FlaskClient, session: Login) -> Any:
    """GET /users/me with `session`'s token."""
    return client.get(f"{API}/users/me", headers=session.headers)


def test_the_two_reads_answer_the_same_with_and_without_the_layer(
    make_app: Callable[..., Flask],
) -> None:
    plain, fast = (
        make_app(OPTIMIZATIONS=False).test_client(),
        make_app(OPTIMIZATIONS=True).test_client(),
    )
    ada = make_user("ada@example.test")
    make_user("root@example.test", role="admin")
    order = place_order(ada)
    other = place_order(make_user("bob@example.test"))
    buyer, admin = login(plain, "ada@example.test"), login(plain, "root@example.test")
    for session, path in [
        (buyer, f"/orders/{order.id}"), (buyer, f"/orders/{other.id}"), (buyer, "/orders/999"),
        (admin, f"/orders/{other.id}"), (buyer, "/users/me"), (admin, "/users/me"),
        (buyer, "/users"), (admin, "/users"), (buyer, "/products"),
    ]:  # fmt: skip
        answers = [c.get(f"{API}{path}", headers=session.headers) for c in (plain, fast, fast)]
        assert {a.status_code for a in answers} == {answers[0].status_code}, path
        assert {a.get_data() for a in answers} == {answers[0].get_data()}, path
        assert {a.headers["Content-Type"] for a in answers} == {"application/json"}
    body = json_body(fast.get(f"{API}/orders/{order.id}", headers=buyer.headers))
    assert [item["line_total"] for item in body["items"]] == ["9.50", "9.50"]
    assert body["user_id"] == ada.id
    assert body["note"] == "ring twice"
    assert_error(fast.get(f"{API}/orders/{other.id}", headers=buyer.headers), 404, "not_found")


def test_a_revoked_session_is_refused_on_its_next_request_in_every_process(
    workers: tuple[FlaskClient, FlaskClient],
) -> None:
    first, second = workers
    make_user("ada@example.test")
    kept, ended = login(first, "ada@example.test"), login(first, "ada@example.test", device="old")
    assert me(first, ended).status_code == me(second, ended).status_code == 200
    response = first.delete(
        f"{API}/auth/sessions/{AuthSession.get_by_id(2).id}", headers=kept.headers
    )
    assert response.status_code == 204
    for client in (second, first):
        assert_error(me(client, ended), 401, "token_revoked")
    assert me(second, kept).status_code == 200


def test_logout_ends_the_token_at_once_in_the_other_process(
    workers: tuple[FlaskClient, FlaskClient],
) -> None:
    first, second = workers
    make_user("ada@example.test")
    session = login(first, "ada@example.test")
    assert me(second, session).status_code == 200
    assert first.post(f"{API}/auth/logout", headers=session.headers).status_code == 204
    assert_error(me(second, session), 401, "token_revoked")
    assert_error(second.get(f"{API}/orders/1", headers=session.headers), 401, "token_revoked")


def test_a_password_change_ends_the_other_sessions_at_once(
    workers: tuple[FlaskClient, FlaskClient],
) -> None:
    first, second = workers
    make_user("ada@example.test")
    here, elsewhere = login(first, "ada@example.test"), login(first, "ada@example.test")
    assert me(second, elsewhere).status_code == 200
    response = first.post(
        f"{API}/users/me/password", headers=here.headers,
        json={"current_password": PASSWORD, "password": NEW_PASSWORD},
    )  # fmt: skip
    assert response.status_code == 204, response.data
    assert_error(me(second, elsewhere), 401, "token_revoked")
    assert me(second, here).status_code == 200


def test_deactivation_and_demotion_are_seen_on_the_next_request(
    workers: tuple[FlaskClient, FlaskClient],
) -> None:
    first, second = workers
    ada = make_user("ada@example.test")
    other_admin = make_user("eve@example.test", role="admin")
    make_user("root@example.test", role="admin")
    root, eve = login(first, "root@example.test"), login(first, "eve@example.test")
    buyer = login(first, "ada@example.test")
    order = place_order(ada)
    assert second.get(f"{API}/users", headers=eve.headers).status_code == 200
    assert second.get(f"{API}/orders/{order.id}", headers=eve.headers).status_code == 200
    demote = first.patch(
        f"{API}/users/{other_admin.id}", headers=root.headers, json={"role": "user"}
    )
    assert demote.status_code == 200, demote.data
    assert_error(second.get(f"{API}/users", headers=eve.headers), 403, "forbidden")
    assert_error(second.get(f"{API}/orders/{order.id}", headers=eve.headers), 404, "not_found")
    assert json_body(me(second, eve))["role"] == "user"
    assert me(second, buyer).status_code == 200
    response = first.patch(f"{API}/users/{ada.id}", headers=root.headers, json={"is_active": False})
    assert response.status_code == 200
    assert_error(me(second, buyer), 401, "token_revoked")


def test_an_inactive_user_with_a_live_session_is_refused(
    workers: tuple[FlaskClient, FlaskClient],
) -> None:
    first, second = workers
    ada = make_user("ada@example.test")
    session = login(first, "ada@example.test")
    assert me(second, session).status_code == 200
    User.update(is_active=False).where(User.id == ada.id).execute()  # sessions left active
    body = assert_error(me(second, session), 401, "unauthorized")
    assert "deactivated" in body["message"]


def test_a_profile_change_shows_in_the_other_process(
    workers: tuple[FlaskClient, FlaskClient],
) -> None:
    first, second = workers
    make_user("ada@example.test")
    session = login(first, "ada@example.test")
    assert json_body(me(second, session))["full_name"] == "ada"
    response = first.patch(f"{API}/users/me", headers=session.headers, json={"full_name": "Ada L."})
    assert response.status_code == 200
    assert json_body(me(second, session))["full_name"] == "Ada L."


def token_for(app: Flask, session: AuthSession, **claims: Any) -> str:
    """An access token of `session` minted by `app`, with `claims` overriding."""
    with app.app_context():
        expires = claims.pop("expires", timedelta(minutes=5))
        return str(
            create_access_token(
                str(session.user_id), additional_claims={"sid": session.id, **claims},
                expires_delta=expires,
            )
        )  # fmt: skip


@pytest.fixture
def signed_in(make_app: Callable[..., Flask], optimized: bool) -> tuple[Flask, FlaskClient, Login]:
    """An app (layer on or off), its client and a signed-in user."""
    app = make_app(OPTIMIZATIONS=optimized)
    client = app.test_client()
    make_user("ada@example.test")
    return app, client, login(client, "ada@example.test")


def test_a_token_expiring_after_it_was_verified_is_refused(
    signed_in: tuple[Flask, FlaskClient, Login],
) -> None:
    app, client, _ = signed_in
    token = token_for(app, AuthSession.get(), expires=timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200
    time.sleep(1.1)
    assert_error(client.get(f"{API}/users/me", headers=headers), 401, "token_expired")
    assert_error(client.get(f"{API}/users/me", headers=headers), 401, "token_expired")


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        ("Bearer not.a.jwt", "unauthorized"),
        ("Bearer ", "unauthorized"),
        ("Bearer a b", "unauthorized"),
        ("Basic YWRhOnNlY3JldA==", "unauthorized"),
        ("bearer {token}", "unauthorized"),
        ("Bearer {token}x", "unauthorized"),
        ("Bearer {token}, Bearer {token}", "unauthorized"),
        ("Bearer {token}, Basic abc", None),
        ("Bearer {refresh}", "unauthorized"),
    ],
)
def test_odd_and_garbled_headers_get_the_main_paths_answer(
    signed_in: tuple[Flask, FlaskClient, Login], authorization: str, error: str | None
) -> None:
    _, client, session = signed_in
    value = authorization.format(token=session.access, refresh=session.refresh)
    response = client.get(f"{API}/users/me", headers={"Authorization": value})
    if error is None:
        assert response.status_code == 200
    else:
        assert_error(response, 401, error)


@pytest.mark.parametrize(
    ("claims", "status", "error"),
    [
        ({"sid": "1"}, 401, "token_revoked"),
        ({"sid": 999}, 401, "token_revoked"),
        ({"type": "refresh"}, 401, "unauthorized"),
        ({"expires": timedelta(seconds=-5)}, 401, "token_expired"),
    ],
)
def test_tokens_with_wrong_claims_are_refused(
    signed_in: tuple[Flask, FlaskClient, Login], claims: dict[str, Any], status: int, error: str
) -> None:
    app, client, _ = signed_in
    token = token_for(app, AuthSession.get(), **claims)
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, status, error)


def test_a_token_without_its_identity_claim_is_refused(
    signed_in: tuple[Flask, FlaskClient, Login],
) -> None:
    app, client, session = signed_in
    claims = pyjwt.decode(session.access, options={"verify_signature": False})
    del claims["sub"]
    token = pyjwt.encode(claims, app.config["JWT_SECRET_KEY"], algorithm="HS256")
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "unauthorized")


def test_a_signed_in_catalog_read_sees_what_its_user_may(
    make_app: Callable[..., Flask], optimized: bool
) -> None:
    client = make_app(OPTIMIZATIONS=optimized).test_client()
    make_user("ada@example.test")
    make_user("root@example.test", role="admin")
    buyer, admin = login(client, "ada@example.test"), login(client, "root@example.test")
    Product.create(sku="OLD", name="Old", description="", price="1.00", stock=1, is_active=False)

    def skus(session: Login) -> list[str]:
        response = client.get(f"{API}/products", headers=session.headers)
        assert response.status_code == 200
        return [product["sku"] for product in response.get_json()]

    assert skus(buyer) == []
    assert skus(admin) == ["OLD"]
    response = client.get(f"{API}/products", headers={"Authorization": "Bearer x"})
    assert_error(response, 401, "unauthorized")


def test_the_verified_tokens_and_seen_sessions_stay_bounded(app: Flask) -> None:
    verifier = TokenVerifier(app)
    user = make_user("ada@example.test")
    session = AuthSession.create(user=user, device_name="d", user_agent="", ip="", current_jti="j")
    verifier.verified.update({str(i): {} for i in range(MAX_VERIFIED_TOKENS)})
    token = token_for(app, session)
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        claims = verifier.claims()
    assert claims is not None
    assert claims["sid"] == session.id
    assert list(verifier.verified) == [token]
    seen = SeenSessions()
    seen.due.update(dict.fromkeys(range(1, MAX_SEEN_SESSIONS + 1), 0.0))
    assert seen.note_due(0) is True
    assert list(seen.due) == [0]
    assert seen.note_due(0) is False


def test_last_seen_is_noted_once_a_minute_per_process(app: Flask) -> None:
    user = make_user("ada@example.test")
    session = AuthSession.create(user=user, device_name="d", user_agent="", ip="", current_jti="j")
    assert sessions.is_active(session.id, note_seen=False) is True
    before = AuthSession.get_by_id(session.id).last_seen_at
    assert sessions.is_active(session.id, note_seen=False) is True
    assert AuthSession.get_by_id(session.id).last_seen_at == before
    assert sessions.is_active(session.id) is True
    assert AuthSession.get_by_id(session.id).last_seen_at >= before


def test_prepared_queries_bind_each_calls_values(app: Flask) -> None:
    ada, bob = make_user("ada@example.test"), make_user("bob@example.test")
    order = place_order(ada)
    found = caller_and_order(user_id=ada.id, order_id=order.id)
    assert found is not None
    assert found[0] == ada
    assert found[1] == order
    assert [line.quantity for line in vars(found[1])["lines"]] == [1, 1]
    assert caller_and_order(user_id=bob.id, order_id=order.id) == (bob, None)
    assert caller_and_order(user_id=ada.id, order_id=order.id + 1) == (ada, None)
    found_user = active_user(ada.id)
    assert found_user == ada
    assert found_user is not None
    assert not found_user.is_dirty()
    User.update(is_active=False).where(User.id == ada.id).execute()
    assert active_user(ada.id) is None
    assert caller_and_order(user_id=ada.id, order_id=order.id) is None


def test_an_admin_reads_anyones_order_in_the_one_query(app: Flask) -> None:
    ada = make_user("ada@example.test")
    root = make_user("root@example.test", role="admin")
    order = place_order(ada)
    found = caller_and_order(user_id=root.id, order_id=order.id)
    assert found is not None
    assert found[1] == order
    assert not found[1].is_dirty()


def test_an_order_without_lines_is_read_with_none(app: Flask) -> None:
    ada = make_user("ada@example.test")
    order = Order.create(user=ada, total="0.00", currency="EUR")
    found = caller_and_order(user_id=ada.id, order_id=order.id)
    assert found is not None
    assert found[1] is not None
    assert vars(found[1])["lines"] == []
    assert found[1].currency == "EUR"


def test_an_orders_payment_is_read_in_the_same_query_and_answered_alike(
    make_app: Callable[..., Flask],
) -> None:
    plain, fast = (
        make_app(OPTIMIZATIONS=False).test_client(),
        make_app(OPTIMIZATIONS=True).test_client(),
    )
    ada = make_user("ada@example.test")
    make_user("root@example.test", role="admin")
    order = place_order(ada)
    Payment.create(
        order=order, provider_payment_id="pi_1", status="processing", amount="19.00",
        currency="EUR", client_secret="pi_1_secret_x",
    )  # fmt: skip
    for email in ("ada@example.test", "root@example.test"):
        session = login(plain, email)
        answers = [
            c.get(f"{API}/orders/{order.id}", headers=session.headers) for c in (plain, fast)
        ]
        assert answers[0].get_data() == answers[1].get_data()
    payment = json_body(answers[1])["payment"]
    assert (payment["provider_payment_id"], payment["status"]) == ("pi_1", "processing")
    assert "client_secret" not in payment
    found = caller_and_order(user_id=ada.id, order_id=order.id)
    assert found is not None
    assert found[1] is not None
    assert found[1].payment.status == "processing"
    assert [line.quantity for line in vars(found[1])["lines"]] == [1, 1]
    unpaid_order = Order.create(user=ada, total="0.00", currency="EUR")
    unpaid = caller_and_order(user_id=ada.id, order_id=unpaid_order.id)
    assert unpaid is not None
    assert unpaid[1] is not None
    assert unpaid[1].payment is None
