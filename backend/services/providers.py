"""Identity providers: who a provider's access token belongs to, and whether it was issued to us.

Every call goes out through `backend.outside` (timeouts, bounded retries).
A token the provider refuses, or one issued to another client id, raises
`Unauthorized` (`invalid_provider_token`); a provider that does not answer
(refused, timed out, 5xx) raises `ServiceUnavailable` (`provider_unavailable`,
with `Retry-After`). A provider is enabled when its `OAUTH_P_CLIENT_ID` is set
(and, for the OpenID Connect ones, its issuer is known); any other name is
`NotFound`.

How each provider proves a token is ours (our client id):

- GitHub: `POST {api}/applications/{client_id}/token` with our client id and
  secret (basic auth) checks the token against our OAuth app; 404/422 means
  it is not one of ours. The profile is `GET /user` and `GET /user/emails`.
- Google: the tokeninfo endpoint's `aud` (or `azp`) must be our client id.
- Auth0: its access tokens are JWTs; the signature is verified against the
  issuer's `jwks_uri` (joserfc, authlib's JOSE library), `iss` must be the
  issuer, `exp` in the future, and `azp` (or `client_id`) our client id.
- Azure: the JWT's `azp` (v2) or `appid` (v1) must be our client id and `exp`
  in the future; the signature is verified against `jwks_uri` as for Auth0,
  except for tokens whose header carries a `nonce` (Microsoft Graph's own
  tokens, which Microsoft documents as not verifiable by third parties): for
  those, the userinfo endpoint accepting the very token is the proof it is
  genuine, and so are its claims.

The Google, Azure and Auth0 profiles come from the OpenID Connect userinfo
endpoint, found through discovery (`{issuer}/.well-known/openid-configuration`,
cached for `DISCOVERY_TTL_SECONDS`, as are the issuer's keys).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from flask import current_app
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from backend import outside
from backend.errors import NotFound, ServiceUnavailable, Unauthorized

log = structlog.get_logger(__name__)

DISCOVERY_TTL_SECONDS = 300
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
CLIENT_CLAIMS = ("azp", "appid", "client_id")
LENIENT = jws.JWSRegistry(strict_check_header=False)


@dataclass(frozen=True)
class Provider:
    """An identity provider we know: its name, the name people see, what we ask for."""

    name: str
    display_name: str
    scope: str
    oidc: bool = True


@dataclass(frozen=True)
class Profile:
    """Who a provider says the token's owner is."""

    provider: str
    subject: str
    email: str
    email_verified: bool
    name: str = ""


KNOWN = {
    "github": Provider("github", "GitHub", "read:user user:email", oidc=False),
    "google": Provider("google", "Google", "openid email profile"),
    "azure": Provider("azure", "Microsoft", "openid email profile"),
    "auth0": Provider("auth0", "Auth0", "openid email profile"),
}
_cache: dict[str, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def forget_cached() -> None:
    """Drop the cached discovery documents and keys (an issuer changed its configuration)."""
    with _cache_lock:
        _cache.clear()


def _setting(provider: Provider, part: str) -> Any:
    return current_app.config.get(f"OAUTH_{provider.name.upper()}_{part}")


def _is_enabled(provider: Provider) -> bool:
    return bool(_setting(provider, "CLIENT_ID")) and (
        not provider.oidc or bool(_setting(provider, "ISSUER"))
    )


def enabled() -> list[Provider]:
    """Return the providers this deployment has a client id (and issuer) for."""
    return [p for p in KNOWN.values() if _is_enabled(p)]


def get(name: str) -> Provider:
    """Return the enabled provider called `name`; raise `NotFound` otherwise."""
    provider = KNOWN.get(name)
    if provider is None or not _is_enabled(provider):
        raise NotFound("There is no such sign-in provider here.", error="unknown_provider")
    return provider


def rejected(message: str = "The provider did not accept this token.") -> Unauthorized:
    """The error for a token that is not valid, or not ours."""
    return Unauthorized(message, error="invalid_provider_token")


def unavailable(retry_after: int = outside.RETRY_AFTER_SECONDS) -> ServiceUnavailable:
    """The error for a provider that does not answer (or whose breaker is open)."""
    return ServiceUnavailable(
        "The sign-in provider is not answering; try again shortly.",
        error="provider_unavailable",
        headers={"Retry-After": str(retry_after)},
    )


def _call(provider: Provider, method: str, url: str, **kwargs: Any) -> outside.Reply:
    timeout = float(current_app.config["OAUTH_PROVIDER_TIMEOUT_SECONDS"])
    try:
        return outside.request(
            method, url, service=f"oauth_{provider.name}", timeout=timeout, **kwargs
        )
    except outside.Unreachable as exc:
        raise unavailable(exc.retry_after) from exc


def _ok_json(reply: outside.Reply) -> dict[str, Any]:
    """The JSON object of a 200; 401/403 is a refused token; anything else, unavailable."""
    if reply.status in (401, 403):
        raise rejected()
    body = reply.json() if reply.status == 200 else None
    if not isinstance(body, dict):
        raise unavailable()
    return body


def _cached_json(provider: Provider, url: str) -> dict[str, Any]:
    with _cache_lock:
        hit = _cache.get(url)
    if hit is not None and hit[0] > time.monotonic():
        return dict(hit[1])
    document = _ok_json(_call(provider, "GET", url))
    with _cache_lock:
        _cache[url] = (time.monotonic() + DISCOVERY_TTL_SECONDS, document)
    return document


def discovery(provider: Provider) -> dict[str, Any]:
    """Return the provider's OpenID Connect discovery document (cached briefly)."""
    issuer = str(_setting(provider, "ISSUER")).rstrip("/")
    return _cached_json(provider, f"{issuer}/.well-known/openid-configuration")


def _endpoint(document: dict[str, Any], name: str) -> str:
    url = document.get(name)
    if not isinstance(url, str) or not url:
        log.error("oidc_discovery_incomplete", missing=name)
        raise unavailable()
    return url


def verify_access_token(provider: Provider, access_token: str) -> Profile:
    """Return the profile of the token's owner, once the provider confirmed it is ours."""
    if not provider.oidc:
        profile = _github_profile(provider, access_token)
    else:
        document = discovery(provider)
        profile = _userinfo(provider, document, access_token)
        if provider.name == "google":
            _check_google_audience(provider, access_token)
        else:
            _check_jwt_client(provider, document, access_token)
    if not profile.subject:
        raise rejected("The provider did not say who this token belongs to.")
    return profile


def _github_profile(provider: Provider, token: str) -> Profile:
    api = str(current_app.config["OAUTH_GITHUB_API_URL"]).rstrip("/")
    client_id = str(_setting(provider, "CLIENT_ID"))
    check = _call(
        provider, "POST", f"{api}/applications/{client_id}/token",
        auth=(client_id, str(_setting(provider, "CLIENT_SECRET") or "")),
        json={"access_token": token}, idempotent=True,
    )  # fmt: skip
    if check.status in (404, 422):
        raise rejected("This token was not issued to this app.")
    if check.status != 200:  # 401/403: our own client id or secret is wrong
        log.error("github_app_check_failed", status=check.status)
        raise unavailable()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    user = _ok_json(_call(provider, "GET", f"{api}/user", headers=headers))
    email, verified = _github_email(_call(provider, "GET", f"{api}/user/emails", headers=headers))
    return Profile(
        provider=provider.name,
        subject=str(user.get("id") or ""),
        email=email or str(user.get("email") or ""),
        email_verified=verified,
        name=str(user.get("name") or user.get("login") or ""),
    )


def _github_email(reply: outside.Reply) -> tuple[str, bool]:
    """The primary address and whether GitHub verified it ("", False without the scope)."""
    emails = reply.json() if reply.status == 200 else []
    for entry in emails if isinstance(emails, list) else []:
        if isinstance(entry, dict) and entry.get("primary"):
            return str(entry.get("email") or ""), entry.get("verified") is True
    return "", False


def _userinfo(provider: Provider, document: dict[str, Any], token: str) -> Profile:
    url = _endpoint(document, "userinfo_endpoint")
    info = _ok_json(_call(provider, "GET", url, headers={"Authorization": f"Bearer {token}"}))
    return Profile(
        provider=provider.name,
        subject=str(info.get("sub") or ""),
        email=str(info.get("email") or ""),
        email_verified=info.get("email_verified") in (True, "true"),
        name=str(info.get("name") or ""),
    )


def _check_google_audience(provider: Provider, token: str) -> None:
    url = str(current_app.config["OAUTH_GOOGLE_TOKENINFO_URL"])
    reply = _call(provider, "GET", url, params={"access_token": token})
    if reply.status == 400:
        raise rejected()
    info = _ok_json(reply)
    if _setting(provider, "CLIENT_ID") not in (info.get("aud"), info.get("azp")):
        raise rejected("This token was not issued to this app.")


def _check_jwt_client(provider: Provider, document: dict[str, Any], token: str) -> None:
    claims = _jwt_claims(provider, document, token)
    try:
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(claims)
    except JoseError as exc:
        raise rejected("This token has expired.") from exc
    issuer = str(_setting(provider, "ISSUER")).rstrip("/")
    if provider.name == "auth0" and str(claims.get("iss", "")).rstrip("/") != issuer:
        raise rejected("This token was issued by someone else.")
    if _setting(provider, "CLIENT_ID") not in {claims.get(name) for name in CLIENT_CLAIMS}:
        raise rejected("This token was not issued to this app.")


def _jwt_claims(provider: Provider, document: dict[str, Any], token: str) -> dict[str, Any]:
    """The token's claims, its signature verified against the issuer's keys where it can be."""
    try:
        # Graph tokens' headers carry `nonce`, which a strict registry refuses to read.
        compact = jws.extract_compact(token.encode(), registry=LENIENT)
        if provider.name == "azure" and "nonce" in compact.protected:
            claims = jwt.json.loads(compact.payload)  # genuine: userinfo accepted it
        else:
            keys = KeySet.import_key_set(_cached_json(provider, _endpoint(document, "jwks_uri")))  # type: ignore[arg-type]
            claims = jwt.decode(token, keys, algorithms=JWT_ALGORITHMS).claims
    except (JoseError, ValueError) as exc:
        raise rejected(
            "This token cannot be checked: it is not a signed JWT of the issuer."
        ) from exc
    if not isinstance(claims, dict):
        raise rejected()
    return claims


def authorization_url(provider: Provider, *, redirect_uri: str, state: str) -> str:
    """Return the provider's authorize URL that sends the user back to `redirect_uri`."""
    if provider.oidc:
        endpoint = _endpoint(discovery(provider), "authorization_endpoint")
    else:
        endpoint = str(current_app.config["OAUTH_GITHUB_AUTHORIZE_URL"])
    client_id = str(_setting(provider, "CLIENT_ID"))
    return str(
        prepare_grant_uri(
            endpoint, client_id, "code", redirect_uri=redirect_uri, scope=provider.scope,
            state=state,
        )
    )  # fmt: skip


def exchange_code(provider: Provider, *, code: str, redirect_uri: str) -> str:
    """Trade an authorization code for the provider's access token (with our client secret).

    Not retried: a code is good for one exchange. Raises `Unauthorized` when
    the provider refuses the code.
    """
    if provider.oidc:
        endpoint = _endpoint(discovery(provider), "token_endpoint")
    else:
        endpoint = str(current_app.config["OAUTH_GITHUB_TOKEN_URL"])
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri,
        client_id=_setting(provider, "CLIENT_ID"),
        client_secret=_setting(provider, "CLIENT_SECRET") or "",
    )  # fmt: skip
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    reply = _call(provider, "POST", endpoint, content=body, headers=headers)
    answer = reply.json() if reply.status < 500 else None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise rejected("The provider did not accept the sign-in code.")
    return token
