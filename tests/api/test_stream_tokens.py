"""Opening a stream checks its token as every other route does, with or without the fast path.

The stream reads only the token's claims and Redis (no user row), so each
refusal is checked here on both paths: the library's verification and the
optimisation layer's cached one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token

from tests.support.accounts import login, make_user
from tests.support.helpers import assert_error

EVENTS = "/api/v1/events"


@pytest.fixture(params=[False, True], ids=["main-path", "optimized"])
def sse_app(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Flask:
    return make_app(OPTIMIZATIONS=request.param, SSE_HEARTBEAT_SECONDS=1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_opens_the_stream(sse_app: Flask) -> None:
    client = sse_app.test_client()
    with sse_app.app_context():
        make_user("ada@example.test")
    ada = login(client, "ada@example.test")
    response = client.get(EVENTS, headers=ada.headers, buffered=False)
    assert response.status_code == 200
    first = next(iter(response.response))
    assert isinstance(first, bytes)
    assert first.startswith(b"retry:")
    response.close()


def test_a_refresh_token_is_refused(sse_app: Flask) -> None:
    client = sse_app.test_client()
    with sse_app.app_context():
        make_user("ada@example.test")
    ada = login(client, "ada@example.test")
    assert_refused_as_elsewhere(client, bearer(ada.refresh))


@pytest.mark.parametrize(
    ("claims", "expires", "status", "error"),
    [
        ({"sid": "1"}, timedelta(minutes=5), 401, "token_revoked"),  # not a session id
        ({}, timedelta(minutes=5), 401, "token_revoked"),  # no session at all
        ({"sid": 1}, timedelta(seconds=-60), 401, "token_expired"),
        ({"sid": 999}, timedelta(minutes=5), 401, "token_revoked"),  # no such session
    ],
)
def test_odd_tokens_are_refused(
    sse_app: Flask, claims: dict[str, object], expires: timedelta, status: int, error: str
) -> None:
    with sse_app.app_context():
        user = make_user("ada@example.test")
        token = create_access_token(str(user.id), additional_claims=claims, expires_delta=expires)
    assert_error(sse_app.test_client().get(EVENTS, headers=bearer(token)), status, error)


def test_a_garbled_header_is_refused(sse_app: Flask) -> None:
    assert_refused_as_elsewhere(sse_app.test_client(), {"Authorization": "Bearer a b"})


def assert_refused_as_elsewhere(client: FlaskClient, headers: dict[str, str]) -> None:
    """The stream refuses `headers` with the very answer `GET /users/me` gives."""
    elsewhere = client.get("/api/v1/users/me", headers=headers)
    expected = elsewhere.get_json()
    assert elsewhere.status_code == 401
    body = assert_error(client.get(EVENTS, headers=headers), 401, expected["error"])
    assert body["message"] == expected["message"]
