"""Identities: linking by verified email, explicit link and unlink, provider-made accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import AuditEvent, Identity, User
from tests.support.accounts import PASSWORD, USER_EMAIL, login, make_user, read_outbox, token_from
from tests.support.oauth_provider import Account, StandIn

API = "/api/v1"


@pytest.fixture
def app(make_app: Callable[..., Flask], stand_in: StandIn) -> Iterator[Flask]:
    """The app with every provider enabled, pointing at the stand-in."""
    flask_app = make_app(**stand_in.settings())
    with flask_app.app_context():
        yield flask_app


def exchange(client: FlaskClient, stand_in: StandIn, account: Account) -> tuple[int, dict]:
    response = client.post(
        f"{API}/auth/oauth/{account.provider}/token",
        json={"access_token": stand_in.issue(account)},
    )
    return response.status_code, response.get_json()


def test_a_verified_email_links_to_an_account_that_verified_it_too(
    client: FlaskClient, stand_in: StandIn
) -> None:
    existing = make_user(USER_EMAIL)
    User.update(email_verified=True).execute()
    status, body = exchange(client, stand_in, Account("google", "g-1", "ADA@example.test"))
    assert status == 200, body
    assert (body["created"], body["user"]["id"]) == (False, existing.id)
    assert Identity.get().user_id == existing.id
    assert AuditEvent.get(AuditEvent.action == "identity.linked").data == {
        "provider": "google", "provider_user_id": "g-1"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("provider_verified", "account_verified"), [(False, True), (True, False), (False, False)]
)
def test_an_unverified_email_on_either_side_is_a_conflict(
    client: FlaskClient, stand_in: StandIn, provider_verified: bool, account_verified: bool
) -> None:
    make_user(USER_EMAIL)
    User.update(email_verified=account_verified).execute()
    account = Account("github", "99", USER_EMAIL, email_verified=provider_verified)
    status, body = exchange(client, stand_in, account)
    assert (status, body["error"]) == (409, "identity_conflict")
    assert Identity.select().count() == 0


def test_an_account_with_another_identity_at_the_provider_is_a_conflict(
    client: FlaskClient, stand_in: StandIn
) -> None:
    make_user(USER_EMAIL)
    User.update(email_verified=True).execute()
    assert exchange(client, stand_in, Account("github", "1", USER_EMAIL))[0] == 200
    status, body = exchange(client, stand_in, Account("github", "2", USER_EMAIL))
    assert (status, body["error"]) == (409, "identity_conflict")


def test_a_provider_made_account_has_no_password_until_a_reset_sets_one(
    client: FlaskClient, stand_in: StandIn, run_worker: Callable[[], bool], outbox: Path
) -> None:
    assert exchange(client, stand_in, Account("github", "1", "new@example.test"))[0] == 200
    assert User.get().password_hash == ""
    for password in ("", " ", PASSWORD):
        response = client.post(
            f"{API}/auth/login", json={"email": "new@example.test", "password": password or "x"}
        )
        assert response.status_code == 401
    forgot = client.post(f"{API}/auth/password/forgot", json={"email": "new@example.test"})
    assert forgot.status_code == 202
    run_worker()
    [message] = read_outbox(outbox)
    reset = {"token": token_from(message), "password": "a brand new password"}
    assert client.post(f"{API}/auth/password/reset", json=reset).status_code == 204
    login(client, "new@example.test", "a brand new password")


def test_an_unverified_provider_email_makes_an_unverified_account_and_mails_a_link(
    client: FlaskClient, stand_in: StandIn, run_worker: Callable[[], bool], outbox: Path
) -> None:
    account = Account("auth0", "a|1", "new@example.test", email_verified=False)
    status, body = exchange(client, stand_in, account)
    assert (status, body["created"], body["user"]["email_verified"]) == (200, True, False)
    run_worker()
    [message] = read_outbox(outbox)
    token = token_from(message)
    assert client.post(f"{API}/auth/email/verify", json={"token": token}).status_code == 204


def test_a_provider_without_an_email_cannot_make_an_account(
    client: FlaskClient, stand_in: StandIn
) -> None:
    status, body = exchange(client, stand_in, Account("google", "1", ""))
    assert (status, body["error"]) == (401, "invalid_provider_token")


def test_list_link_and_unlink(client: FlaskClient, stand_in: StandIn, user: dict[str, str]) -> None:
    assert client.get(f"{API}/users/me/identities", headers=user).get_json() == []
    token = stand_in.issue(Account("azure", "az-1", "work@example.test"))
    linked = client.post(
        f"{API}/users/me/identities/azure", json={"access_token": token}, headers=user
    )
    assert linked.status_code == 201, linked.get_json()
    assert linked.get_json()["provider_user_id"] == "az-1"
    again = client.post(
        f"{API}/users/me/identities/azure", json={"access_token": token}, headers=user
    )
    assert again.status_code == 201  # the same account: nothing changes
    [listed] = client.get(f"{API}/users/me/identities", headers=user).get_json()
    assert listed["provider"] == "azure"
    assert listed["email"] == "work@example.test"
    assert listed["created_at"].endswith("+00:00")
    # The linked identity now signs in to this account.
    status, body = exchange(client, stand_in, Account("azure", "az-1", "work@example.test"))
    assert (status, body["user"]["email"]) == (200, USER_EMAIL)
    assert client.delete(f"{API}/users/me/identities/azure", headers=user).status_code == 204
    assert client.delete(f"{API}/users/me/identities/azure", headers=user).status_code == 404
    actions = {e.action for e in AuditEvent.select()}
    assert {"identity.linked", "identity.unlinked"} <= actions


def test_an_identity_linked_to_another_account_cannot_be_linked(
    client: FlaskClient, stand_in: StandIn, user: dict[str, str]
) -> None:
    assert exchange(client, stand_in, Account("github", "7", "other@example.test"))[0] == 200
    token = stand_in.issue(Account("github", "7", "other@example.test"))
    response = client.post(
        f"{API}/users/me/identities/github", json={"access_token": token}, headers=user
    )
    assert (response.status_code, response.get_json()["error"]) == (409, "identity_conflict")
    second = stand_in.issue(Account("github", "8", "x@example.test"))
    client.post(f"{API}/users/me/identities/github", json={"access_token": second}, headers=user)
    third = stand_in.issue(Account("github", "9", "y@example.test"))
    response = client.post(
        f"{API}/users/me/identities/github", json={"access_token": third}, headers=user
    )
    assert (response.status_code, response.get_json()["error"]) == (409, "identity_conflict")


def test_linking_checks_the_token_like_sign_in(
    client: FlaskClient, stand_in: StandIn, user: dict[str, str]
) -> None:
    token = stand_in.issue(Account("google", "1", "g@example.test", client_id="other"))
    response = client.post(
        f"{API}/users/me/identities/google", json={"access_token": token}, headers=user
    )
    assert response.status_code == 401
    response = client.post(
        f"{API}/users/me/identities/nope", json={"access_token": token}, headers=user
    )
    assert response.status_code == 404


def test_the_last_sign_in_method_cannot_be_unlinked(client: FlaskClient, stand_in: StandIn) -> None:
    status, body = exchange(client, stand_in, Account("github", "1", "new@example.test"))
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    second = stand_in.issue(Account("google", "g", "new@example.test"))
    assert client.post(
        f"{API}/users/me/identities/google", json={"access_token": second}, headers=headers
    ).status_code == 201  # fmt: skip
    assert client.delete(f"{API}/users/me/identities/github", headers=headers).status_code == 204
    response = client.delete(f"{API}/users/me/identities/google", headers=headers)
    assert (response.status_code, response.get_json()["error"]) == (409, "last_sign_in_method")
    assert Identity.select().count() == 1


def test_an_account_with_a_password_can_unlink_its_only_identity(
    client: FlaskClient, stand_in: StandIn, user: dict[str, str]
) -> None:
    token = stand_in.issue(Account("github", "1", "x@example.test"))
    client.post(f"{API}/users/me/identities/github", json={"access_token": token}, headers=user)
    assert client.delete(f"{API}/users/me/identities/github", headers=user).status_code == 204
