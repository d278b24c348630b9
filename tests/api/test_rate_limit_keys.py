"""Per-email limits key the address as accounts normalise it; limits hold with Redis down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from backend.redis_store import client_from_url
from tests.support.accounts import PASSWORD, make_user, read_outbox
from tests.support.helpers import assert_error

API = "/api/v1"
SPELLINGS = ["ivan@example.com", "ＩＶＡＮ@example.com", " Ivan@Example.com ", "ｉvan@example.com"]


def test_look_alike_spellings_share_the_login_limit(make_app: Callable[..., Flask]) -> None:
    client = make_app(RATELIMIT_LOGIN_PER_EMAIL="2/minute").test_client()
    make_user("ivan@example.com")
    wrong = {"password": "not the password"}
    for email in SPELLINGS[:2]:
        response = client.post(f"{API}/auth/login", json={**wrong, "email": email})
        assert response.status_code == 401
    for email in SPELLINGS:
        response = client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        assert_error(response, 429, "rate_limited")


def test_look_alike_spellings_share_the_forgot_password_limit(
    make_app: Callable[..., Flask], run_worker: Callable[[], bool], outbox: Path
) -> None:
    client = make_app(RATELIMIT_FORGOT_PER_EMAIL="1/hour").test_client()
    make_user("ivan@example.com")
    codes = [
        client.post(f"{API}/auth/password/forgot", json={"email": email}).status_code
        for email in SPELLINGS
    ]
    assert codes == [202, 429, 429, 429]
    run_worker()
    assert len(read_outbox(outbox)) == 1


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"email": 7}', b"{not json", b'{"email": "\xff"}'])
def test_a_body_without_a_usable_email_is_still_limited(
    make_app: Callable[..., Flask], body: bytes
) -> None:
    client = make_app(RATELIMIT_LOGIN_PER_EMAIL="1/minute").test_client()
    statuses = [
        client.post(f"{API}/auth/login", data=body, content_type="application/json").status_code
        for _ in range(2)
    ]
    assert statuses[0] in (400, 422)
    assert statuses[1] == 429


def test_limits_hold_in_memory_while_redis_is_unreachable(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:9/0", RATELIMIT_LOGIN_PER_EMAIL="3/minute")
    client = app.test_client()
    body = {"email": "ivan@example.com", "password": "not the password"}
    statuses = [client.post(f"{API}/auth/login", json=body).status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]


def test_a_new_app_does_not_inherit_a_dead_storage_verdict(
    make_app: Callable[..., Flask], redis_url: str
) -> None:
    # The limiter is one object per process; an earlier app whose Redis was down must not
    # leave the next one counting in memory (and flipping to Redis halfway through a window).
    down = make_app(REDIS_URL="redis://127.0.0.1:9/0").test_client()
    down.post(f"{API}/auth/login", json={"email": "a@example.com", "password": "x" * 10})
    client = make_app(RATELIMIT_LOGIN_PER_EMAIL="1/minute").test_client()
    body = {"email": "ivan@example.com", "password": "not the password"}
    statuses = [client.post(f"{API}/auth/login", json=body).status_code for _ in range(2)]
    assert statuses == [401, 429]
    redis = client_from_url(redis_url)
    try:
        assert redis.keys("*ratelimit*"), "the healthy app counted in memory, not in its Redis"
    finally:
        redis.close()
