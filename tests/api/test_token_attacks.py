"""Forged, expired, misplaced and revoked tokens are all refused with 401."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token

from backend.models import AuthSession
from tests.support.accounts import login, make_user
from tests.support.helpers import assert_error

API = "/api/v1"

PROTECTED = [
    ("post", "/auth/refresh"),
    ("post", "/auth/logout"),
    ("get", "/auth/sessions"),
    ("delete", "/auth/sessions/1"),
    ("get", "/users/me"),
    ("patch", "/users/me"),
    ("post", "/users/me/password"),
    ("get", "/users"),
    ("get", "/users/1"),
    ("patch", "/users/1"),
]


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_endpoints_need_a_token(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(f"{API}{path}", json={})
    body = assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization" in body["message"] or "Sign in" in body["message"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_endpoints_refuse_garbage_tokens(
    client: FlaskClient, method: str, path: str
) -> None:
    response = getattr(client, method)(
        f"{API}{path}", json={}, headers={"Authorization": "Bearer not.a.jwt"}
    )
    assert_error(response, 401, "unauthorized")


def valid_claims(client: FlaskClient) -> dict[str, object]:
    make_user("ada@example.test")
    session = login(client, "ada@example.test")
    return dict(pyjwt.decode(session.access, options={"verify_signature": False}))


def test_alg_none_is_refused(app: Flask, client: FlaskClient) -> None:
    claims = valid_claims(client)
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "unauthorized")


def test_a_token_signed_with_another_key_is_refused(app: Flask, client: FlaskClient) -> None:
    claims = valid_claims(client)
    token = pyjwt.encode(claims, "x" * 64, algorithm="HS256")
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "unauthorized")


def test_a_tampered_claim_breaks_the_signature(app: Flask, client: FlaskClient) -> None:
    make_user("ada@example.test")
    session = login(client, "ada@example.test")
    header, payload, signature = session.access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    token = f"{header}.{b64(claims)}.{signature}"
    response = client.get(f"{API}/users", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "unauthorized")


def test_an_expired_token_says_so(app: Flask, client: FlaskClient) -> None:
    make_user("ada@example.test")
    login(client, "ada@example.test")
    session = AuthSession.get()
    token = create_access_token(
        str(session.user_id), additional_claims={"sid": session.id}, expires_delta=timedelta(-1)
    )
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "token_expired")


def test_a_token_without_a_session_is_refused(app: Flask, client: FlaskClient) -> None:
    user = make_user("ada@example.test")
    token = create_access_token(str(user.id))
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "token_revoked")


def test_the_revocation_check_falls_back_to_the_database_without_redis(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app().test_client()
    make_user("ada@example.test")
    session = login(client, "ada@example.test")
    offline = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    assert offline.get(f"{API}/users/me", headers=session.headers).status_code == 200
    AuthSession.update(revoked_at=AuthSession.created_at).execute()
    assert_error(offline.get(f"{API}/users/me", headers=session.headers), 401, "token_revoked")


def test_security_headers_on_every_response(client: FlaskClient) -> None:
    for path in ("/healthz", f"{API}/openapi.json", f"{API}/nowhere"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert "no-store" not in client.get("/healthz").headers.get("Cache-Control", "")
    response = client.post(f"{API}/auth/login", json={})
    assert response.headers["Cache-Control"] == "no-store"
