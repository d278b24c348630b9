"""Token exchange: a provider's access token for our token pair (`POST /auth/oauth/{p}/token`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import AuditEvent, Identity, User
from tests.support.oauth_provider import Account, StandIn

PROVIDERS = ("github", "google", "azure", "auth0")


@pytest.fixture
def app(make_app: Callable[..., Flask], stand_in: StandIn) -> Iterator[Flask]:
    """The app with every provider enabled, pointing at the stand-in."""
    flask_app = make_app(**stand_in.settings())
    with flask_app.app_context():
        yield flask_app


def exchange(client: FlaskClient, provider: str, token: str) -> tuple[int, dict]:
    response = client.post(
        f"/api/v1/auth/oauth/{provider}/token", json={"access_token": token, "device_name": "t"}
    )
    return response.status_code, response.get_json()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_new_identity_makes_an_account_then_signs_in_to_it(
    client: FlaskClient, stand_in: StandIn, provider: str
) -> None:
    account = Account(provider, "4242", "grace@example.test")
    status, body = exchange(client, provider, stand_in.issue(account))
    assert status == 200, body
    assert body["created"] is True
    assert body["token_type"] == "Bearer"
    assert body["user"]["email"] == "grace@example.test"
    assert body["user"]["email_verified"] is True
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    status, again = exchange(client, provider, stand_in.issue(account))
    assert status == 200
    assert again["created"] is False
    assert again["user"]["id"] == body["user"]["id"]
    assert Identity.get().provider_user_id == "4242"
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert actions == [
        "user.registered", "identity.linked", "auth.oauth_login", "auth.oauth_login"
    ]  # fmt: skip
    registered = AuditEvent.get(AuditEvent.action == "user.registered")
    assert registered.data == {"provider": provider}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_token_issued_to_another_app_is_refused(
    client: FlaskClient, stand_in: StandIn, provider: str
) -> None:
    token = stand_in.issue(Account(provider, "1", "g@example.test", client_id="someone-else"))
    status, body = exchange(client, provider, token)
    assert (status, body["error"]) == (401, "invalid_provider_token")
    assert User.select().count() == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unknown_token_is_refused(client: FlaskClient, provider: str) -> None:
    status, body = exchange(client, provider, "never-issued")
    assert (status, body["error"]) == (401, "invalid_provider_token")


def test_a_forged_jwt_is_refused_even_when_the_issuer_knows_its_text(
    client: FlaskClient, stand_in: StandIn
) -> None:
    token = stand_in.issue(Account("auth0", "1", "g@example.test"))
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    stand_in.tokens[forged] = stand_in.tokens[token]  # userinfo would accept it
    status, body = exchange(client, "auth0", forged)
    assert (status, body["error"]) == (401, "invalid_provider_token")


def test_an_azure_graph_token_is_proved_by_userinfo_and_its_appid_checked(
    client: FlaskClient, stand_in: StandIn
) -> None:
    ours = stand_in.issue(Account("azure", "7", "g@example.test"), header={"nonce": "n"})
    theirs = stand_in.issue(
        Account("azure", "8", "h@example.test", client_id="other"), header={"nonce": "n"}
    )
    assert exchange(client, "azure", theirs)[0] == 401
    assert exchange(client, "azure", ours)[0] == 200


def test_a_provider_whose_port_is_closed_answers_503_at_once(
    make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    app = make_app(**stand_in.settings(OAUTH_PROVIDER_TIMEOUT_SECONDS=5))
    stand_in.stop()
    for provider in PROVIDERS:
        started = time.monotonic()
        response = app.test_client().post(
            f"/api/v1/auth/oauth/{provider}/token", json={"access_token": "x"}
        )
        assert time.monotonic() - started < 1.5  # well under the 5 s timeout
        assert response.status_code == 503
        assert response.get_json()["error"] == "provider_unavailable"
        assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("provider", ["github", "google"])
def test_a_hanging_provider_answers_503_after_the_timeout(
    client: FlaskClient, stand_in: StandIn, provider: str
) -> None:
    token = stand_in.issue(Account(provider, "1", "g@example.test"))
    stand_in.mode = "slow"
    started = time.monotonic()
    status, body = exchange(client, provider, token)
    elapsed = time.monotonic() - started
    assert (status, body["error"]) == (503, "provider_unavailable")
    assert 0.5 <= elapsed < 1.5  # one timeout (0.5 s), not one per retry


def test_a_provider_answering_500_is_unavailable_after_a_bounded_retry(
    client: FlaskClient, stand_in: StandIn
) -> None:
    stand_in.mode = "error"
    status, body = exchange(client, "google", "x")
    assert (status, body["error"]) == (503, "provider_unavailable")
    assert len(stand_in.calls) == 1  # discovery: a 500 is not retried (only 502-504)


def test_a_deactivated_account_cannot_sign_in(client: FlaskClient, stand_in: StandIn) -> None:
    account = Account("github", "5", "g@example.test")
    assert exchange(client, "github", stand_in.issue(account))[0] == 200
    User.update(is_active=False).execute()
    status, body = exchange(client, "github", stand_in.issue(account))
    assert (status, body["error"]) == (401, "account_deactivated")


def test_unknown_and_disabled_providers_are_404(
    make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    app = make_app(**stand_in.settings(OAUTH_AZURE_CLIENT_ID=None, OAUTH_AUTH0_ISSUER=None))
    client = app.test_client()
    for provider in ("azure", "auth0", "facebook"):
        response = client.post(f"/api/v1/auth/oauth/{provider}/token", json={"access_token": "x"})
        assert response.status_code == 404
    listed = client.get("/api/v1/auth/providers").get_json()
    assert listed == [
        {"name": "github", "display_name": "GitHub"},
        {"name": "google", "display_name": "Google"},
    ]


def test_no_provider_is_offered_without_client_ids(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    assert client.get("/api/v1/auth/providers").get_json() == []
    response = client.post("/api/v1/auth/oauth/github/token", json={"access_token": "x"})
    assert response.status_code == 404


def test_the_exchange_is_rate_limited_per_ip(
    make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    app = make_app(**stand_in.settings(RATELIMIT_OAUTH_PER_IP="2/minute"))
    client = app.test_client()
    codes = [
        client.post("/api/v1/auth/oauth/github/token", json={"access_token": "x"}).status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 429]


def test_a_503_is_retried_with_backoff_then_given_up(
    client: FlaskClient, stand_in: StandIn
) -> None:
    token = stand_in.issue(Account("github", "1", "g@example.test"))
    stand_in.failures = 2
    assert exchange(client, "github", token)[0] == 200  # the app check, retried twice
    stand_in.calls.clear()
    stand_in.failures = 10
    status, body = exchange(client, "github", token)
    assert (status, body["error"]) == (503, "provider_unavailable")
    assert len(stand_in.calls) == 3  # one try and two retries


def test_a_provider_answering_garbage_is_unavailable(
    client: FlaskClient, stand_in: StandIn
) -> None:
    stand_in.tokens["t"] = Account("github", "", "g@example.test")
    status, body = exchange(client, "github", "t")  # GitHub says the user has no id
    assert (status, body["error"]) == (401, "invalid_provider_token")


@pytest.mark.parametrize(
    "claims", [{"exp": int(time.time()) - 60}, {"iss": "https://someone-else.example/"}]
)
def test_an_expired_or_foreign_auth0_token_is_refused(
    client: FlaskClient, stand_in: StandIn, claims: dict
) -> None:
    token = stand_in.issue(Account("auth0", "1", "g@example.test"), claims=claims)
    status, body = exchange(client, "auth0", token)
    assert (status, body["error"]) == (401, "invalid_provider_token")


def test_a_wrong_client_secret_of_ours_is_unavailable_not_the_users_fault(
    make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    client = make_app(**stand_in.settings(OAUTH_GITHUB_CLIENT_SECRET="wrong")).test_client()
    token = stand_in.issue(Account("github", "1", "g@example.test"))
    status, body = exchange(client, "github", token)
    assert (status, body["error"]) == (503, "provider_unavailable")


def test_a_failing_provider_trips_its_breaker_and_sign_in_answers_503_at_once(
    make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    app = make_app(
        **stand_in.settings(PROVIDER_BREAKER_FAILURES=2, PROVIDER_BREAKER_COOLDOWN_SECONDS=30)
    )
    client = app.test_client()
    token = stand_in.issue(Account("github", "1", "g@example.test"))
    stand_in.mode = "error"
    for _ in range(2):
        assert exchange(client, "github", token)[0] == 503
    stand_in.calls.clear()
    started = time.monotonic()
    response = client.post("/api/v1/auth/oauth/github/token", json={"access_token": token})
    assert time.monotonic() - started < 0.2
    assert response.status_code == 503
    assert response.get_json()["error"] == "provider_unavailable"
    assert 29 <= int(response.headers["Retry-After"]) <= 30
    assert stand_in.calls == []  # not called while the breaker is open
    stand_in.mode = "ok"
    assert (
        exchange(client, "google", stand_in.issue(Account("google", "2", "h@example.test")))[0]
        == 200
    )  # another provider's breaker is closed
