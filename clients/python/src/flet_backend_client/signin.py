"""Sign-in with identity providers (GitHub, Google, Azure, Auth0) and linked identities.

Two ways, for the two kinds of Flet app:

- A web app (or any app that already holds a provider access token, e.g. from
  Flet's `page.login`): `login_with_provider(provider, access_token)`.
- A packaged desktop/mobile or static web app, which cannot run the OAuth
  callback itself: `sign_in_with_provider(provider, open_url)` lets the
  backend run the flow. It starts a sign-in (PKCE: the verifier never leaves
  this process), opens the provider's page, and waits until the backend has
  seen the provider's callback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flet_backend_client.models import JSON, User, _dt
from flet_backend_client.session import Session
from flet_backend_client.tokens import Tokens

OpenUrl = Callable[[str], Awaitable[Any] | Any]


@dataclass(frozen=True)
class Provider:
    """An identity provider the server accepts (`github`, `google`, `azure`, `auth0`)."""

    name: str
    display_name: str

    @classmethod
    def from_json(cls, data: JSON) -> Provider:
        """Build from the API's JSON."""
        return cls(name=str(data["name"]), display_name=str(data.get("display_name") or ""))


@dataclass(frozen=True)
class Identity:
    """A provider account linked to the signed-in user."""

    provider: str
    provider_user_id: str
    email: str
    created_at: datetime | None

    @classmethod
    def from_json(cls, data: JSON) -> Identity:
        """Build from the API's JSON."""
        return cls(
            provider=str(data["provider"]),
            provider_user_id=str(data.get("provider_user_id", "")),
            email=str(data.get("email") or ""),
            created_at=_dt(data.get("created_at")),
        )


@dataclass(frozen=True)
class PendingSignIn:
    """A backend-run sign-in in progress: open `authorization_url`, then complete it.

    `code_verifier` is the PKCE secret: only its S256 hash was sent to the server.
    """

    provider: str
    authorization_url: str
    handle: str
    expires_in: int
    code_verifier: str


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE `(code_verifier, code_challenge)` (RFC 7636, method S256)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class ProviderSignIn:
    """The provider sign-in part of `AsyncClient`."""

    _session: Session

    async def providers(self) -> list[Provider]:
        """The identity providers this server has enabled."""
        body = await self._session.json("GET", "/auth/providers", auth=False, retries=2)
        return [Provider.from_json(item) for item in body or []]

    async def login_with_provider(
        self, provider: str, access_token: str, device_name: str | None = None
    ) -> User:
        """Sign in with a provider's access token (what Flet's `page.login` holds).

        The server checks the token with the provider and that it was issued to
        the server's own client id; the account is made on first sign-in.

        Raises:
            AuthError: The provider refused the token (`invalid_provider_token`).
            ConflictError: The email belongs to an account it may not be linked
                to automatically (`identity_conflict`): sign in, then `link_identity`.
            ServiceUnavailableError: The provider could not be reached.
        """
        payload = {"access_token": access_token}
        if device_name is not None:
            payload["device_name"] = device_name
        path = f"/auth/oauth/{quote(provider)}/token"
        return await self._signed_in(
            await self._session.json("POST", path, json=payload, auth=False)
        )

    async def start_provider_sign_in(
        self, provider: str, redirect_uri: str | None = None
    ) -> PendingSignIn:
        """Start a backend-run sign-in; open the returned `authorization_url` next.

        Args:
            provider: `github`, `google`, `azure` or `auth0`.
            redirect_uri: Where the browser goes once the provider is done (one
                of the server's `OAUTH_REDIRECT_URIS`); default: a page saying
                the window can be closed.
        """
        verifier, challenge = pkce_pair()
        payload = {"code_challenge": challenge, "code_challenge_method": "S256"}
        if redirect_uri is not None:
            payload["redirect_uri"] = redirect_uri
        path = f"/auth/oauth/{quote(provider)}/start"
        body = await self._session.json("POST", path, json=payload, auth=False)
        return PendingSignIn(
            provider=provider, authorization_url=str(body["authorization_url"]),
            handle=str(body["handle"]), expires_in=int(body.get("expires_in") or 0),
            code_verifier=verifier,
        )  # fmt: skip

    async def complete_provider_sign_in(self, pending: PendingSignIn) -> User | None:
        """Finish a backend-run sign-in: the user once the provider answered, else None.

        Raises:
            ExpiredError: The sign-in expired, was completed already or is unknown.
            AuthError: The provider refused the sign-in.
        """
        payload = {"handle": pending.handle, "code_verifier": pending.code_verifier}
        response = await self._session.request(
            "POST", "/auth/oauth/complete", json=payload, auth=False
        )
        if response.status_code == 202:
            return None
        return await self._signed_in(response.json())

    async def sign_in_with_provider(
        self,
        provider: str,
        open_url: OpenUrl,
        *,
        redirect_uri: str | None = None,
        poll_interval: float = 1.0,
    ) -> User:
        """Run the whole backend-run sign-in: start, `open_url(authorization_url)`, wait.

        `open_url` may be a plain or an async function (in a Flet app:
        `page.launch_url`). Waits until the sign-in completes or expires.

        Raises:
            ExpiredError: Not completed in time (the server's handle expired).
        """
        pending = await self.start_provider_sign_in(provider, redirect_uri)
        opened = open_url(pending.authorization_url)
        if inspect.isawaitable(opened):
            await opened
        while True:
            user = await self.complete_provider_sign_in(pending)
            if user is not None:
                return user
            await asyncio.sleep(poll_interval)

    async def identities(self) -> list[Identity]:
        """The provider accounts linked to the signed-in user."""
        body = await self._session.json("GET", "/users/me/identities", retries=2)
        return [Identity.from_json(item) for item in body or []]

    async def link_identity(self, provider: str, access_token: str) -> Identity:
        """Link a provider account (by its access token) to the signed-in user.

        Raises:
            ConflictError: It is linked to another account (`identity_conflict`).
        """
        path = f"/users/me/identities/{quote(provider)}"
        body = await self._session.json("POST", path, json={"access_token": access_token})
        return Identity.from_json(body)

    async def unlink_identity(self, provider: str) -> None:
        """Unlink a provider account.

        Raises:
            ConflictError: It is the last way to sign in (`last_sign_in_method`).
        """
        await self._session.request("DELETE", f"/users/me/identities/{quote(provider)}")

    async def _signed_in(self, body: dict[str, Any]) -> User:
        await self._session.set_tokens(Tokens.from_dict(body))
        return User.from_json(body["user"])
