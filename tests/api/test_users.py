"""Profiles, password changes, user administration and the account CLI."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from backend.models import AuditEvent, User
from backend.services import passwords
from tests.support.accounts import PASSWORD, login, make_user
from tests.support.helpers import assert_error, json_body

API = "/api/v1"


def test_me_can_be_read_and_renamed(client: FlaskClient) -> None:
    make_user("ada@example.test")
    ada = login(client, "ada@example.test")
    me = json_body(client.get(f"{API}/users/me", headers=ada.headers))
    assert set(me) == {
        "id", "email", "full_name", "role", "is_active", "email_verified", "created_at"
    }  # fmt: skip
    renamed = client.patch(f"{API}/users/me", json={"full_name": "Ada L."}, headers=ada.headers)
    assert json_body(renamed)["full_name"] == "Ada L."
    sneaky = client.patch(
        f"{API}/users/me", json={"full_name": "x", "role": "admin"}, headers=ada.headers
    )
    assert_error(sneaky, 422, "validation_error")
    assert User.get().role == "user"


def test_change_password_needs_the_current_one_and_ends_other_sessions(
    client: FlaskClient,
) -> None:
    make_user("ada@example.test")
    phone = login(client, "ada@example.test", device="phone")
    laptop = login(client, "ada@example.test", device="laptop")
    wrong = client.post(
        f"{API}/users/me/password",
        json={"current_password": "not it at all", "password": "another long one"},
        headers=phone.headers,
    )
    body = assert_error(wrong, 422, "invalid_password")
    assert "current_password" in body["errors"]["json"]
    weak = client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "password": "short"},
        headers=phone.headers,
    )
    assert_error(weak, 422, "validation_error")
    ok = client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "password": "another long one"},
        headers=phone.headers,
    )
    assert ok.status_code == 204
    assert client.get(f"{API}/users/me", headers=phone.headers).status_code == 200
    assert_error(client.get(f"{API}/users/me", headers=laptop.headers), 401, "token_revoked")
    assert passwords.verify_password(User.get().password_hash, "another long one")
    assert AuditEvent.select().where(AuditEvent.action == "user.password_changed").count() == 1


def admin_and_user(client: FlaskClient) -> tuple[str, str, int]:
    make_user("root@example.test", role="admin")
    target = make_user("ada@example.test")
    return (
        login(client, "root@example.test").headers["Authorization"],
        login(client, "ada@example.test").headers["Authorization"],
        target.id,
    )


def test_admin_lists_users_with_pagination(client: FlaskClient) -> None:
    admin, _, _ = admin_and_user(client)
    for n in range(3):
        make_user(f"u{n}@example.test")
    response = client.get(f"{API}/users?page=2&page_size=2", headers={"Authorization": admin})
    assert response.status_code == 200
    assert [u["email"] for u in response.get_json()] == ["u0@example.test", "u1@example.test"]
    pagination = json.loads(response.headers["X-Pagination"])
    assert pagination["total"] == 5
    assert pagination["total_pages"] == 3
    too_big = client.get(f"{API}/users?page_size=101", headers={"Authorization": admin})
    assert_error(too_big, 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/users"), ("get", "/users/1"), ("patch", "/users/1")],
)
def test_user_admin_endpoints_are_forbidden_to_users(
    client: FlaskClient, method: str, path: str
) -> None:
    _, user, _ = admin_and_user(client)
    response = getattr(client, method)(f"{API}{path}", json={}, headers={"Authorization": user})
    assert_error(response, 403, "forbidden")


def test_admin_reads_and_changes_a_user(client: FlaskClient) -> None:
    admin, user, target = admin_and_user(client)
    headers = {"Authorization": admin}
    assert json_body(client.get(f"{API}/users/{target}", headers=headers))["id"] == target
    assert_error(client.get(f"{API}/users/999", headers=headers), 404, "not_found")
    promoted = client.patch(f"{API}/users/{target}", json={"role": "admin"}, headers=headers)
    assert json_body(promoted)["role"] == "admin"
    bad = client.patch(f"{API}/users/{target}", json={"role": "owner"}, headers=headers)
    assert_error(bad, 422, "validation_error")
    events = list(AuditEvent.select().where(AuditEvent.action == "user.role_changed"))
    assert [(e.target_id, e.data) for e in events] == [
        (str(target), {"from": "user", "to": "admin"})
    ]


def test_deactivating_a_user_ends_their_sessions(client: FlaskClient) -> None:
    admin, user, target = admin_and_user(client)
    response = client.patch(
        f"{API}/users/{target}", json={"is_active": False}, headers={"Authorization": admin}
    )
    assert json_body(response)["is_active"] is False
    assert_error(
        client.get(f"{API}/users/me", headers={"Authorization": user}), 401, "token_revoked"
    )
    assert AuditEvent.select().where(AuditEvent.action == "user.active_changed").count() == 1


@pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}])
def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    client: FlaskClient, change: dict[str, object]
) -> None:
    admin, _, _ = admin_and_user(client)
    root = User.get(User.email == "root@example.test")
    response = client.patch(f"{API}/users/{root.id}", json=change, headers={"Authorization": admin})
    assert_error(response, 409, "last_admin")
    assert User.get_by_id(root.id).role == "admin"
    second = make_user("second@example.test", role="admin")
    response = client.patch(f"{API}/users/{root.id}", json=change, headers={"Authorization": admin})
    assert response.status_code == 200
    assert second.id


def test_create_admin_is_idempotent_and_promotes(runner: FlaskCliRunner) -> None:
    first = runner.invoke(
        args=["create-admin", "--email", "Boss@Example.test", "--password", PASSWORD]
    )
    assert first.exit_code == 0, first.output
    assert "created admin boss@example.test" in first.output
    again = runner.invoke(args=["create-admin", "--email", "boss@example.test"])
    assert "promoted admin boss@example.test" in again.output
    assert User.select().count() == 1
    make_user("ada@example.test")
    runner.invoke(args=["create-admin", "--email", "ada@example.test"])
    assert User.get(User.email == "ada@example.test").role == "admin"
    weak = runner.invoke(args=["create-admin", "--email", "x@example.test", "--password", "short"])
    assert weak.exit_code != 0
    assert "at least 10 characters" in weak.output


def test_seed_demo_prints_working_credentials(runner: FlaskCliRunner, client: FlaskClient) -> None:
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    *accounts, catalog = result.output.strip().splitlines()
    assert catalog == "catalog: 28 products added"
    rows = [line.split() for line in accounts]
    assert [(r[0], r[1]) for r in rows] == [
        ("admin", "admin@example.com"),
        ("user", "user@example.com"),
    ]
    for role, email, password in rows:
        assert login(client, email, password).user_id
        assert User.get(User.email == email).role == role
    assert "catalog: 0 products added" in runner.invoke(args=["seed-demo"]).output


def test_a_deleted_users_token_stops_working(client: FlaskClient) -> None:
    user = make_user("ada@example.test")
    ada = login(client, "ada@example.test")
    User.delete().where(User.id == user.id).execute()
    assert_error(client.get(f"{API}/users/me", headers=ada.headers), 401, "token_revoked")


def test_a_deactivated_users_cached_session_still_fails(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    user = make_user("ada@example.test")
    ada = login(client, "ada@example.test")
    assert client.get(f"{API}/users/me", headers=ada.headers).status_code == 200  # now cached
    User.update(is_active=False).where(User.id == user.id).execute()  # behind the service's back
    assert_error(client.get(f"{API}/users/me", headers=ada.headers), 401, "unauthorized")
