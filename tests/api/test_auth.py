"""Sign-up, sign-in, refresh rotation, sign-out, sessions, password reset, verification."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import AuditEvent, AuthSession, OneTimeToken, User, utcnow
from tests.support.accounts import PASSWORD, Login, login, make_user, read_outbox, token_from
from tests.support.helpers import assert_error, json_body

API = "/api/v1"


def actions() -> list[str]:
    return [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]


# --- registration and email verification ------------------------------------------------


def test_register_creates_the_user_and_mails_a_verification_token(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path
) -> None:
    response = client.post(
        f"{API}/auth/register",
        json={"email": "Ada@Example.test", "password": PASSWORD, "full_name": "Ada"},
    )
    assert response.status_code == 201
    user = json_body(response)
    assert user["email"] == "ada@example.test"
    assert user["role"] == "user"
    assert user["email_verified"] is False
    assert user["created_at"].endswith("+00:00")
    assert "password_hash" not in user
    assert User.get().password_hash.startswith("$argon2id$")

    run_worker()
    [message] = read_outbox(outbox)
    assert message["To"] == "ada@example.test"
    token = token_from(message)
    assert OneTimeToken.get().token_hash != token  # stored hashed

    assert client.post(f"{API}/auth/email/verify", json={"token": token}).status_code == 204
    assert User.get().email_verified is True
    again = client.post(f"{API}/auth/email/verify", json={"token": token})
    assert_error(again, 422, "invalid_token")
    assert actions() == ["user.registered", "user.email_verified"]


@pytest.mark.parametrize(
    "email", ["ada@example.test", "ADA@example.test", "ａｄａ@example.test", " ada@example.test"]
)
def test_register_refuses_an_email_taken_in_any_case_or_width(
    client: FlaskClient, email: str
) -> None:
    make_user("ada@example.test")
    response = client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
    if email.startswith(" "):
        assert_error(response, 422, "validation_error")
    else:
        assert_error(response, 409, "email_taken")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.test", "password": "short"}, "password"),
        ({"email": "longname@example.test", "password": "longname@example.test"}, "password"),
        ({"email": "longname1@example.test", "password": "LONGNAME1"}, "password"),
        ({"email": "x@example.test", "password": "p" * 300}, "password"),
        ({"email": "аdmin@example.test", "password": PASSWORD}, "email"),  # Cyrillic а
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "x@example.test" + "x" * 300, "password": PASSWORD}, "email"),
        ({"password": PASSWORD}, "email"),
        ({"email": "x@example.test", "password": PASSWORD, "role": "admin"}, "role"),
        ({"email": "x@example.test", "password": PASSWORD, "full_name": "n" * 201}, "full_name"),
    ],
)
def test_register_rejects_bad_input_with_field_errors(
    client: FlaskClient, body: dict[str, object], field: str
) -> None:
    response = client.post(f"{API}/auth/register", json=body)
    errors = assert_error(response, 422, response.get_json()["error"])["errors"]
    assert field in errors["json"]
    assert User.select().count() == 0


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(
        f"{API}/auth/login", data=b"{email:", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "bad_request")


# --- login ---------------------------------------------------------------------------------


def test_login_returns_a_token_pair_and_the_user(client: FlaskClient) -> None:
    make_user("ada@example.test")
    response = client.post(
        f"{API}/auth/login",
        json={"email": "ADA@example.test", "password": PASSWORD, "device_name": "Pixel 9"},
        headers={"User-Agent": "flet/1.0"},
    )
    assert response.status_code == 200
    body = json_body(response)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["user"]["email"] == "ada@example.test"
    assert response.headers["Cache-Control"] == "no-store"
    session = AuthSession.get()
    assert (session.device_name, session.user_agent) == ("Pixel 9", "flet/1.0")
    me = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert json_body(me)["email"] == "ada@example.test"


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.test", "wrong password!"), ("nobody@example.test", PASSWORD)],
)
def test_login_failures_look_the_same(client: FlaskClient, email: str, password: str) -> None:
    make_user("ada@example.test")
    response = client.post(f"{API}/auth/login", json={"email": email, "password": password})
    body = assert_error(response, 401, "invalid_credentials")
    assert body["message"] == "Invalid email or password."
    assert actions() == ["auth.login_failed"]


def test_deactivated_users_cannot_log_in(client: FlaskClient) -> None:
    user = make_user("ada@example.test")
    user.is_active = False
    user.save()
    response = client.post(
        f"{API}/auth/login", json={"email": "ada@example.test", "password": PASSWORD}
    )
    assert_error(response, 401, "invalid_credentials")


def test_login_rehashes_passwords_made_with_old_parameters(client: FlaskClient) -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    User.create(email="ada@example.test", password_hash=old)
    login(client, "ada@example.test")
    assert User.get().password_hash != old
    login(client, "ada@example.test")


def test_brute_force_login_is_rate_limited(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATELIMIT_LOGIN_PER_EMAIL="3/minute")
    client = app.test_client()
    body = {"email": "ada@example.test", "password": "wrong password!"}
    codes = [client.post(f"{API}/auth/login", json=body).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    response = client.post(f"{API}/auth/login", json=body)
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    other = client.post(f"{API}/auth/login", json={**body, "email": "bob@example.test"})
    assert other.status_code == 401


# --- refresh rotation and reuse detection ---------------------------------------------------


def refresh(client: FlaskClient, token: str) -> tuple[int, dict[str, object]]:
    response = client.post(f"{API}/auth/refresh", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, json_body(response)


def test_refresh_rotates_the_pair(client: FlaskClient) -> None:
    make_user("ada@example.test")
    first = login(client, "ada@example.test")
    status, body = refresh(client, first.refresh)
    assert status == 200
    assert body["refresh_token"] != first.refresh
    assert body["access_token"] != first.access
    status, _ = refresh(client, str(body["refresh_token"]))
    assert status == 200
    assert AuthSession.get().rotations == 2


def test_a_retried_refresh_within_the_grace_window_gets_the_current_pair(
    client: FlaskClient,
) -> None:
    make_user("ada@example.test")
    first = login(client, "ada@example.test")
    _, winner = refresh(client, first.refresh)
    status, retry = refresh(client, first.refresh)
    assert status == 200
    # both clients now hold a refresh token for the same (current) family member
    assert refresh(client, str(retry["refresh_token"]))[0] == 200
    assert AuthSession.get().revoked_at is None
    assert winner["refresh_token"]


def test_reusing_a_spent_refresh_token_revokes_the_session(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(REFRESH_REUSE_GRACE_SECONDS=0).test_client()
    make_user("ada@example.test")
    first = login(client, "ada@example.test")
    _, rotated = refresh(client, first.refresh)
    status, body = refresh(client, first.refresh)  # the thief replays the stolen token
    assert status == 401
    assert body["error"] == "refresh_token_reused"
    assert AuthSession.get().revoked_reason == "refresh_reuse"
    # the legitimate holder is signed out too: refresh and access tokens are dead
    assert refresh(client, str(rotated["refresh_token"]))[1]["error"] == "token_revoked"
    me = client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert_error(me, 401, "token_revoked")
    assert "auth.refresh_reuse_detected" in actions()


def test_access_and_refresh_tokens_are_not_interchangeable(client: FlaskClient) -> None:
    make_user("ada@example.test")
    session = login(client, "ada@example.test")
    assert_error(
        client.get(f"{API}/users/me", headers=session.refresh_headers), 401, "unauthorized"
    )
    response = client.post(f"{API}/auth/refresh", headers=session.headers)
    assert_error(response, 401, "unauthorized")


# --- logout and sessions ---------------------------------------------------------------------


def three_devices(client: FlaskClient) -> tuple[Login, Login, Login]:
    make_user("ada@example.test")
    return (
        login(client, "ada@example.test", device="phone"),
        login(client, "ada@example.test", device="laptop"),
        login(client, "ada@example.test", device="tablet"),
    )


def status_of(client: FlaskClient, device: Login) -> int:
    return client.get(f"{API}/users/me", headers=device.headers).status_code


@pytest.mark.parametrize(
    ("scope", "alive"),
    [("local", [401, 200, 200]), ("others", [200, 401, 401]), ("global", [401, 401, 401])],
)
def test_logout_scopes(client: FlaskClient, scope: str, alive: list[int]) -> None:
    devices = three_devices(client)
    response = client.post(f"{API}/auth/logout?scope={scope}", headers=devices[0].headers)
    assert response.status_code == 204
    assert [status_of(client, d) for d in devices] == alive
    assert actions()[-1] == "auth.logout"


def test_logout_default_scope_is_local_and_unknown_scopes_are_refused(
    client: FlaskClient,
) -> None:
    phone, laptop, _ = three_devices(client)
    bad = client.post(f"{API}/auth/logout?scope=everything", headers=phone.headers)
    assert_error(bad, 422, "validation_error")
    assert client.post(f"{API}/auth/logout", headers=phone.headers).status_code == 204
    assert [status_of(client, phone), status_of(client, laptop)] == [401, 200]


def test_sessions_list_marks_the_current_one(client: FlaskClient) -> None:
    phone, _, _ = three_devices(client)
    listed = client.get(f"{API}/auth/sessions", headers=phone.headers).get_json()
    assert {s["device_name"] for s in listed} == {"phone", "laptop", "tablet"}
    assert [s["device_name"] for s in listed if s["current"]] == ["phone"]
    assert set(listed[0]) == {
        "id", "device_name", "user_agent", "ip", "created_at", "last_seen_at", "current"
    }  # fmt: skip


def test_revoking_one_session_ends_only_that_device(client: FlaskClient) -> None:
    phone, laptop, tablet = three_devices(client)
    laptop_id = AuthSession.get(AuthSession.device_name == "laptop").id
    response = client.delete(f"{API}/auth/sessions/{laptop_id}", headers=phone.headers)
    assert response.status_code == 204
    assert [status_of(client, d) for d in (phone, laptop, tablet)] == [200, 401, 200]
    again = client.delete(f"{API}/auth/sessions/{laptop_id}", headers=phone.headers)
    assert_error(again, 404, "not_found")


def test_another_users_sessions_are_invisible(client: FlaskClient) -> None:
    make_user("ada@example.test")
    make_user("bob@example.test", role="admin")
    ada = login(client, "ada@example.test")
    bob = login(client, "bob@example.test")
    ada_session = AuthSession.get(AuthSession.user == ada.user_id).id
    bob_listing = client.get(f"{API}/auth/sessions", headers=bob.headers).get_json()
    assert ada_session not in {s["id"] for s in bob_listing}
    response = client.delete(f"{API}/auth/sessions/{ada_session}", headers=bob.headers)
    assert_error(response, 404, "not_found")
    assert status_of(client, ada) == 200


# --- password reset --------------------------------------------------------------------------


def test_forgot_password_answers_the_same_for_unknown_emails(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path
) -> None:
    make_user("ada@example.test")
    known = client.post(f"{API}/auth/password/forgot", json={"email": "ada@example.test"})
    unknown = client.post(f"{API}/auth/password/forgot", json={"email": "eve@example.test"})
    lookalike = client.post(f"{API}/auth/password/forgot", json={"email": "аda@example.test"})
    assert known.status_code == unknown.status_code == lookalike.status_code == 202
    assert known.data == unknown.data == lookalike.data
    run_worker()
    assert [m["To"] for m in read_outbox(outbox)] == ["ada@example.test"]


def test_reset_password_sets_it_and_ends_every_session(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path
) -> None:
    make_user("ada@example.test")
    old = login(client, "ada@example.test")
    client.post(f"{API}/auth/password/forgot", json={"email": "ada@example.test"})
    run_worker()
    token = token_from(read_outbox(outbox)[0])
    new_password = "a brand new secret"
    response = client.post(
        f"{API}/auth/password/reset", json={"token": token, "password": new_password}
    )
    assert response.status_code == 204
    assert status_of(client, old) == 401
    login(client, "ada@example.test", new_password)
    replay = client.post(f"{API}/auth/password/reset", json={"token": token, "password": PASSWORD})
    assert_error(replay, 422, "invalid_token")
    assert {"auth.password_reset_requested", "auth.password_reset"} <= set(actions())


def test_expired_or_unknown_reset_tokens_are_refused(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path
) -> None:
    make_user("ada@example.test")
    client.post(f"{API}/auth/password/forgot", json={"email": "ada@example.test"})
    run_worker()
    token = token_from(read_outbox(outbox)[0])
    OneTimeToken.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    body = {"token": token, "password": "a brand new secret"}
    assert_error(client.post(f"{API}/auth/password/reset", json=body), 422, "invalid_token")
    body["token"] = "x" * 43
    assert_error(client.post(f"{API}/auth/password/reset", json=body), 422, "invalid_token")


def test_a_verification_token_cannot_reset_a_password(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path
) -> None:
    client.post(f"{API}/auth/register", json={"email": "ada@example.test", "password": PASSWORD})
    run_worker()
    token = token_from(read_outbox(outbox)[0])
    body = {"token": token, "password": "a brand new secret"}
    assert_error(client.post(f"{API}/auth/password/reset", json=body), 422, "invalid_token")


def test_writes_have_a_default_rate_limit_and_reads_do_not(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(RATELIMIT_WRITES="2/minute").test_client()
    body = {"token": "x" * 43, "password": "a brand new secret"}
    codes = [client.post(f"{API}/auth/password/reset", json=body).status_code for _ in range(3)]
    assert codes == [422, 422, 429]
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))


def test_client_ip_comes_from_trusted_proxies_only(make_app: Callable[..., Flask]) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7"}
    body = {"email": "ada@example.test", "password": "wrong password!"}
    make_app().test_client().post(f"{API}/auth/login", json=body, headers=headers)
    make_app(PROXY_FIX_X_FOR=1).test_client().post(f"{API}/auth/login", json=body, headers=headers)
    ips = [e.ip for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert ips == ["127.0.0.1", "203.0.113.7"]
