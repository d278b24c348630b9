"""Reset links are spent by whatever settles the password: a reset, a change, a deactivation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.support.accounts import PASSWORD, login, make_user, read_outbox, token_from
from tests.support.helpers import assert_error

API = "/api/v1"
EMAIL = "ada@example.test"
NEW_PASSWORD = "a brand new secret"


def mailed_reset_links(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path, count: int
) -> list[str]:
    """Ask for `count` reset mails and return their links' tokens, oldest first."""
    for _ in range(count):
        response = client.post(f"{API}/auth/password/forgot", json={"email": EMAIL})
        assert response.status_code == 202
    run_worker()
    tokens = [token_from(message) for message in read_outbox(outbox)]
    assert len(set(tokens)) == count
    return tokens


def reset(client: FlaskClient, token: str, password: str = NEW_PASSWORD) -> int:
    body = {"token": token, "password": password}
    return client.post(f"{API}/auth/password/reset", json=body).status_code


def test_a_reset_spends_the_older_links_too(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path
) -> None:
    make_user(EMAIL)
    older, newer = mailed_reset_links(client, run_worker, outbox, 2)
    assert reset(client, newer) == 204
    body = {"token": older, "password": "yet another secret"}
    assert_error(client.post(f"{API}/auth/password/reset", json=body), 422, "invalid_token")
    login(client, EMAIL, NEW_PASSWORD)  # the older link changed nothing


def test_a_password_change_spends_every_outstanding_link(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path
) -> None:
    make_user(EMAIL)
    links = mailed_reset_links(client, run_worker, outbox, 2)
    signed_in = login(client, EMAIL)
    changed = client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "password": NEW_PASSWORD},
        headers=signed_in.headers,
    )
    assert changed.status_code == 204
    assert [reset(client, token, "attacker's choice!") for token in links] == [422, 422]
    login(client, EMAIL, NEW_PASSWORD)


@pytest.mark.parametrize("reactivate", [False, True])
def test_deactivation_spends_every_outstanding_link(
    client: FlaskClient, run_worker: Callable[[], bool], outbox: Path, reactivate: bool
) -> None:
    make_user("boss@example.test", role="admin")
    user = make_user(EMAIL)
    [link] = mailed_reset_links(client, run_worker, outbox, 1)
    boss = login(client, "boss@example.test")
    for active in [False, True] if reactivate else [False]:
        response = client.patch(
            f"{API}/users/{user.id}", json={"is_active": active}, headers=boss.headers
        )
        assert response.status_code == 200
    assert reset(client, link) == 422
