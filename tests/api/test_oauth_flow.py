"""Backend-run sign-in with PKCE: start, the provider's callback, complete."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import AuditEvent
from tests.support.oauth_provider import Account, StandIn

API = "/api/v1"
REDIRECT = "myapp://signed-in"


@pytest.fixture
def app(make_app: Callable[..., Flask], stand_in: StandIn) -> Iterator[Flask]:
    """The app with every provider enabled, pointing at the stand-in."""
    flask_app = make_app(**stand_in.settings())
    with flask_app.app_context():
        yield flask_app


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def start(client: FlaskClient, provider: str, **extra: str) -> tuple[str, dict]:
    verifier, challenge = pkce()
    body = {"code_challenge": challenge, "code_challenge_method": "S256", **extra}
    response = client.post(f"{API}/auth/oauth/{provider}/start", json=body)
    assert response.status_code == 200, response.get_json()
    return verifier, response.get_json()


def provider_redirect(authorization_url: str) -> str:
    """Follow the authorize URL at the stand-in; return the callback path and query it sends."""
    location = httpx.get(authorization_url, follow_redirects=False).headers["Location"]
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def complete(client: FlaskClient, handle: str, verifier: str) -> tuple[int, dict]:
    response = client.post(
        f"{API}/auth/oauth/complete", json={"handle": handle, "code_verifier": verifier}
    )
    return response.status_code, response.get_json()


@pytest.mark.parametrize("provider", ["github", "google", "azure", "auth0"])
def test_the_full_flow_signs_in_once(client: FlaskClient, stand_in: StandIn, provider: str) -> None:
    verifier, started = start(client, provider, redirect_uri=REDIRECT)
    assert started["expires_in"] == 600
    url = urlsplit(started["authorization_url"])
    query = parse_qs(url.query)
    assert url.path.endswith("/authorize")
    assert query["client_id"] == ["our-client-id"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"http://localhost{API}/auth/oauth/{provider}/callback"]
    assert complete(client, started["handle"], verifier) == (202, {"status": "pending"})

    stand_in.next_login = Account(provider, "77", "grace@example.test")
    callback = client.get(provider_redirect(started["authorization_url"]))
    assert callback.status_code == 200
    assert callback.content_type.startswith("text/html")
    page = callback.get_data(as_text=True)
    assert "You can close this window" in page
    assert f'href="{REDIRECT}"' in page

    status, body = complete(client, started["handle"], verifier)
    assert status == 200, body
    assert (body["created"], body["user"]["email"]) == (True, "grace@example.test")
    me = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    status, body = complete(client, started["handle"], verifier)
    assert (status, body["error"]) == (410, "expired")
    assert AuditEvent.select().where(AuditEvent.action == "auth.oauth_login").count() == 1


def test_a_replayed_or_unknown_state_is_a_400_page(client: FlaskClient, stand_in: StandIn) -> None:
    verifier, started = start(client, "github")
    stand_in.next_login = Account("github", "1", "g@example.test")
    callback_path = provider_redirect(started["authorization_url"])
    assert client.get(callback_path).status_code == 200
    replayed = client.get(callback_path)
    assert replayed.status_code == 400
    assert replayed.content_type.startswith("text/html")
    tampered = client.get(f"{API}/auth/oauth/github/callback?code=c&state=tampered")
    assert tampered.status_code == 400
    assert "unknown, used or expired" in tampered.get_data(as_text=True)
    assert complete(client, started["handle"], verifier)[0] == 200


def test_a_state_of_another_provider_is_refused(client: FlaskClient, stand_in: StandIn) -> None:
    _, started = start(client, "github")
    state = parse_qs(urlsplit(started["authorization_url"]).query)["state"][0]
    response = client.get(f"{API}/auth/oauth/google/callback?code=c&state={state}")
    assert response.status_code == 400


def test_a_wrong_verifier_is_refused_and_spends_the_handle(client: FlaskClient) -> None:
    verifier, started = start(client, "google")
    other, _ = pkce()
    status, body = complete(client, started["handle"], other)
    assert (status, body["error"]) == (400, "invalid_code_verifier")
    assert complete(client, started["handle"], verifier)[0] == 410


def test_an_expired_handle_is_gone(make_app: Callable[..., Flask], stand_in: StandIn) -> None:
    client = make_app(**stand_in.settings(OAUTH_HANDLE_TTL_SECONDS=1)).test_client()
    verifier, started = start(client, "github")
    assert started["expires_in"] == 1
    time.sleep(1.1)
    assert complete(client, started["handle"], verifier)[0] == 410
    assert complete(client, "never-issued", verifier)[0] == 410


def test_a_redirect_uri_not_allowed_is_422(client: FlaskClient) -> None:
    _, challenge = pkce()
    body = {"code_challenge": challenge, "code_challenge_method": "S256",
            "redirect_uri": "https://evil.example/steal"}  # fmt: skip
    response = client.post(f"{API}/auth/oauth/github/start", json=body)
    assert response.status_code == 422
    assert "redirect_uri" in response.get_json()["errors"]["json"]
    body = {"code_challenge": challenge, "code_challenge_method": "plain"}
    assert client.post(f"{API}/auth/oauth/github/start", json=body).status_code == 422


def test_the_page_escapes_what_it_shows(make_app: Callable[..., Flask], stand_in: StandIn) -> None:
    odd = 'myapp://x?a=<b>&c="d"'
    client = make_app(**stand_in.settings(OAUTH_REDIRECT_URIS=[odd])).test_client()
    _, started = start(client, "github", redirect_uri=odd)
    stand_in.next_login = Account("github", "1", "g@example.test")
    page = client.get(provider_redirect(started["authorization_url"])).get_data(as_text=True)
    assert "<b>" not in page
    assert "myapp://x?a=&lt;b&gt;&amp;c=&quot;d&quot;" in page


def test_a_sign_in_cancelled_at_the_provider_fails_at_complete(client: FlaskClient) -> None:
    verifier, started = start(client, "auth0")
    state = parse_qs(urlsplit(started["authorization_url"]).query)["state"][0]
    page = client.get(f"{API}/auth/oauth/auth0/callback?error=access_denied&state={state}")
    assert page.status_code == 200
    assert "Sign-in failed" in page.get_data(as_text=True)
    status, body = complete(client, started["handle"], verifier)
    assert (status, body["error"]) == (401, "invalid_provider_token")


def test_a_refused_code_fails_at_complete(client: FlaskClient) -> None:
    verifier, started = start(client, "github")
    state = parse_qs(urlsplit(started["authorization_url"]).query)["state"][0]
    client.get(f"{API}/auth/oauth/github/callback?code=forged&state={state}")
    status, body = complete(client, started["handle"], verifier)
    assert (status, body["error"]) == (401, "invalid_provider_token")


def test_a_conflict_at_the_callback_is_the_answer_of_complete(
    client: FlaskClient, stand_in: StandIn, user: dict[str, str]
) -> None:
    verifier, started = start(client, "google")
    stand_in.next_login = Account("google", "1", "ada@example.test", email_verified=False)
    assert client.get(provider_redirect(started["authorization_url"])).status_code == 200
    status, body = complete(client, started["handle"], verifier)
    assert (status, body["error"]) == (409, "identity_conflict")


def test_a_provider_down_at_the_callback_is_a_503_at_complete(
    client: FlaskClient, stand_in: StandIn
) -> None:
    verifier, started = start(client, "google")
    state = parse_qs(urlsplit(started["authorization_url"]).query)["state"][0]
    stand_in.stop()
    assert client.get(f"{API}/auth/oauth/google/callback?code=c&state={state}").status_code == 200
    status, body = complete(client, started["handle"], verifier)
    assert (status, body["error"]) == (503, "provider_unavailable")


def test_start_and_complete_are_rate_limited(
    make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    settings = stand_in.settings(RATELIMIT_OAUTH_PER_IP="1/minute",
                                 RATELIMIT_OAUTH_COMPLETE_PER_IP="1/minute")  # fmt: skip
    client = make_app(**settings).test_client()
    verifier, started = start(client, "github")
    _, challenge = pkce()
    body = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert client.post(f"{API}/auth/oauth/github/start", json=body).status_code == 429
    assert complete(client, started["handle"], verifier)[0] == 202
    assert complete(client, started["handle"], verifier)[0] == 429
