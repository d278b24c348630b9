"""Provider sign-in: exchanging a provider's token, and the backend-run flow for static apps.

Token exchange: the app already holds a provider access token (Flet's
`page.login`); once the provider confirms it was issued to us, it signs in
as the identity's account (see `backend.services.identities`).

Backend-run sign-in (packaged and static apps, which cannot receive the
provider's redirect): `start` stores a pending sign-in in Redis under a
random `handle` (what the app keeps) and `state` (what travels through the
provider), both for `OAUTH_HANDLE_TTL_SECONDS` and stored only as SHA-256
digests; `callback` spends the state, trades the code for a token with our
client secret, checks it as a token exchange would and stores the outcome
under the handle; `complete` hands the tokens to whoever shows the PKCE
`code_verifier` whose S256 digest is the `code_challenge` given to `start`,
once. A wrong verifier spends the handle too (400 `invalid_code_verifier`):
nobody gets to guess twice.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import current_app

from backend.errors import (
    Conflict,
    DomainError,
    Gone,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from backend.models import Identity, User
from backend.redis_store import get_redis
from backend.services import identities, providers
from backend.services.audit import ClientInfo
from backend.services.identities import ProviderTokenPair
from backend.services.tokens import digest

HANDLE_KEY = "oauth:handle:{}"
STATE_KEY = "oauth:state:{}"
PENDING, DONE, FAILED = "pending", "done", "failed"
ERRORS: dict[int, type[DomainError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}


def sign_in_with_token(
    *, provider: str, access_token: str, device_name: str, client: ClientInfo
) -> ProviderTokenPair:
    """Sign in with a provider's access token; return our tokens and whether the account is new.

    Raises `NotFound` (unknown or disabled provider), `Unauthorized`
    (`invalid_provider_token`, `account_deactivated`), `Conflict`
    (`identity_conflict`) and `ServiceUnavailable` (`provider_unavailable`).
    """
    chosen = providers.get(provider)
    profile = providers.verify_access_token(chosen, access_token)
    user, created = identities.resolve(profile=profile, client=client)
    return identities.open_session(
        user=user, created=created, provider=chosen.name, device_name=device_name, client=client
    )


def link_with_token(
    *, user: User, provider: str, access_token: str, client: ClientInfo
) -> Identity:
    """Link the provider account that owns `access_token` to `user`; errors as for sign-in."""
    profile = providers.verify_access_token(providers.get(provider), access_token)
    return identities.link(user=user, profile=profile, client=client)


def start(
    *,
    provider: str,
    code_challenge: str,
    code_challenge_method: str,
    redirect_uri: str | None,
    callback_url: str,
) -> dict[str, Any]:
    """Begin a backend-run sign-in; return the provider URL to open and the app's handle.

    `callback_url` is where the provider sends the browser back (our callback);
    `redirect_uri`, when given, must be in `OAUTH_REDIRECT_URIS` (else
    `ValidationFailed`): the callback page sends the user there afterwards.
    """
    chosen = providers.get(provider)
    if redirect_uri is not None and redirect_uri not in current_app.config["OAUTH_REDIRECT_URIS"]:
        message = "This redirect_uri is not allowed (OAUTH_REDIRECT_URIS)."
        raise ValidationFailed(message, errors={"json": {"redirect_uri": [message]}})
    handle, state = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    url = providers.authorization_url(chosen, redirect_uri=callback_url, state=state)
    ttl = int(current_app.config["OAUTH_HANDLE_TTL_SECONDS"])
    record = {
        "provider": chosen.name,
        "challenge": code_challenge,
        "method": code_challenge_method,
        "redirect_uri": redirect_uri,
        "callback_url": callback_url,
        "status": PENDING,
    }
    with get_redis().pipeline() as pipe:
        pipe.set(HANDLE_KEY.format(digest(handle)), json.dumps(record), ex=ttl)
        pipe.set(STATE_KEY.format(digest(state)), digest(handle), ex=ttl)
        pipe.execute()
    return {"authorization_url": url, "handle": handle, "expires_in": ttl}


def _take_state(state: str) -> str | None:
    """Spend `state` (once, atomically); return its handle's digest."""
    with get_redis().pipeline() as pipe:  # MULTI/EXEC: get and delete as one
        pipe.get(STATE_KEY.format(digest(state)))
        pipe.delete(STATE_KEY.format(digest(state)))
        found, _ = pipe.execute()
    return found.decode() if found else None


def callback(
    *, provider: str, code: str | None, state: str, error: str | None, client: ClientInfo
) -> dict[str, Any]:
    """Finish the provider's side of a sign-in; return the stored outcome (`status`, `message`).

    Raises `DomainError` (400, `invalid_state`) for a state that is unknown,
    spent, expired or of another provider. A code the provider refuses, a
    token that is not ours or an identity conflict is stored for `complete`.
    """
    chosen = providers.get(provider)
    handle_digest = _take_state(state)
    raw = get_redis().get(HANDLE_KEY.format(handle_digest)) if handle_digest else None
    record = json.loads(raw) if raw else None
    if record is None or record["provider"] != chosen.name:
        raise DomainError("This sign-in link is unknown, used or expired.", error="invalid_state")
    try:
        if error or not code:
            raise providers.rejected("The sign-in was cancelled at the provider.")
        token = providers.exchange_code(chosen, code=code, redirect_uri=record["callback_url"])
        profile = providers.verify_access_token(chosen, token)
        user, created = identities.resolve(profile=profile, client=client)
        record.update(status=DONE, user_id=user.id, created=created, message="Signed in.")
    except DomainError as exc:
        record.update(status=FAILED, code=exc.status_code, error=exc.error, message=exc.message)
    get_redis().set(HANDLE_KEY.format(handle_digest), json.dumps(record), xx=True, keepttl=True)
    return record


def complete(*, handle: str, code_verifier: str, client: ClientInfo) -> ProviderTokenPair | None:
    """Hand over the tokens of a finished sign-in, once; None while it is still pending.

    Raises `Gone` (`expired`) for a handle that is unknown, expired or used,
    `DomainError` (400, `invalid_code_verifier`) when the verifier does not
    match the challenge (the handle is spent), and the sign-in's own error
    when it failed at the callback.
    """
    key = HANDLE_KEY.format(digest(handle))
    raw = get_redis().get(key)
    if raw is None:
        raise Gone("This sign-in has expired or was already completed.", error="expired")
    record = json.loads(raw)
    if not secrets.compare_digest(create_s256_code_challenge(code_verifier), record["challenge"]):
        get_redis().delete(key)
        raise DomainError(
            "The code_verifier does not match the code_challenge.", error="invalid_code_verifier"
        )
    if record["status"] == PENDING:
        return None
    if not get_redis().delete(key):  # another request completed it first
        raise Gone("This sign-in has expired or was already completed.", error="expired")
    if record["status"] == FAILED:
        raise _stored_error(record)
    user = User.get_or_none(User.id == record["user_id"])
    if user is None:  # deleted since the callback
        raise Gone("This sign-in has expired or was already completed.", error="expired")
    return identities.open_session(
        user=user, created=bool(record["created"]),
        provider=record["provider"], device_name="", client=client,
    )  # fmt: skip


def _stored_error(record: dict[str, Any]) -> DomainError:
    if record["code"] == 503:
        return providers.unavailable()
    return ERRORS.get(record["code"], DomainError)(record["message"], error=record["error"])
