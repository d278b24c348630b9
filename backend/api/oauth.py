"""Sign-in with identity providers (GitHub, Google, Azure, Auth0): token exchange and PKCE flow."""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Response, jsonify, url_for
from flask_limiter.util import get_remote_address

from backend.api.blueprint import Blueprint
from backend.api.security import client_info
from backend.errors import DomainError
from backend.ratelimit import configured, limiter
from backend.schemas.identities import (
    CallbackQuerySchema,
    CompleteSchema,
    PendingSchema,
    ProviderSchema,
    ProviderTokenPairSchema,
    ProviderTokenSchema,
    StartedSchema,
    StartSchema,
)
from backend.services import oauth, providers

blp = Blueprint("oauth", __name__, url_prefix="/auth", description="Sign-in with providers.")

HTML = {"type": "string", "description": "A small HTML page for the browser."}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>{refresh}</head>
<body><h1>{title}</h1><p>{message}</p>{link}</body></html>
"""
UNAVAILABLE = "`provider_unavailable`: the provider did not answer in time; `Retry-After`."
CONFLICT = "`identity_conflict`: the email is an account's that this identity may not join."


def page(status: int, *, title: str, message: str, redirect_uri: str | None = None) -> Response:
    """Render the callback's page (every value escaped), sending the user on to `redirect_uri`."""
    refresh = link = ""
    if redirect_uri:
        target = escape(redirect_uri, quote=True)
        refresh = f'<meta http-equiv="refresh" content="0;url={target}">'
        link = f'<p><a href="{target}">Return to the app</a></p>'
    body = PAGE.format(title=escape(title), message=escape(message), refresh=refresh, link=link)
    return Response(body, status=status, content_type="text/html; charset=utf-8")


@blp.route("/providers")
@blp.response(200, ProviderSchema(many=True))
def list_providers() -> Any:
    """List the sign-in providers this deployment offers."""
    return providers.enabled()


@blp.route("/oauth/<provider>/token", methods=["POST"])
@blp.alt_response(409, description=CONFLICT)
@blp.alt_response(503, description=UNAVAILABLE)
@limiter.limit(configured("RATELIMIT_OAUTH_PER_IP"), key_func=get_remote_address)
@blp.arguments(ProviderTokenSchema)
@blp.response(200, ProviderTokenPairSchema)
def token_exchange(payload: dict[str, Any], provider: str) -> Any:
    """Sign in with a provider's access token.

    Answers our own token pair, as `/auth/login` does, and `created` when the
    account was made now. 401 `invalid_provider_token` when the provider
    refuses the token or it was issued to another app; 404 for a provider
    that is not enabled.
    """
    return oauth.sign_in_with_token(provider=provider, **payload, client=client_info())


@blp.route("/oauth/<provider>/start", methods=["POST"])
@blp.alt_response(503, description=UNAVAILABLE)
@limiter.limit(configured("RATELIMIT_OAUTH_PER_IP"), key_func=get_remote_address)
@blp.arguments(StartSchema)
@blp.response(200, StartedSchema)
def start(payload: dict[str, Any], provider: str) -> Any:
    """Begin a backend-run sign-in (packaged and static apps).

    Open `authorization_url` in a browser, then post the `handle` and the PKCE
    verifier to `/auth/oauth/complete`. 422 for a `redirect_uri` that is not
    allowed.
    """
    callback_url = url_for("oauth.callback", provider=provider, _external=True)
    payload.setdefault("redirect_uri", None)
    return oauth.start(provider=provider, **payload, callback_url=callback_url)


@blp.route("/oauth/<provider>/callback")
@blp.alt_response(400, schema=HTML, content_type="text/html", description="Unknown or used state.")
@blp.arguments(CallbackQuerySchema, location="query")
@blp.response(200, HTML, content_type="text/html", description="The sign-in is recorded.")
def callback(query: dict[str, str], provider: str) -> Response:
    """Where the provider sends the browser back; answers a page for the user."""
    try:
        done = oauth.callback(provider=provider, code=query.get("code"), state=query["state"],
                              error=query.get("error"), client=client_info())  # fmt: skip
    except DomainError as exc:
        if exc.status_code != 400:
            raise
        return page(400, title="Sign-in failed", message=exc.message)
    title = "You can close this window" if done["status"] == "done" else "Sign-in failed"
    return page(200, title=title, message=done["message"], redirect_uri=done["redirect_uri"])


@blp.route("/oauth/complete", methods=["POST"])
@blp.alt_response(202, schema=PendingSchema, description="Not signed in at the provider yet.")
@blp.alt_response(400, description="`invalid_code_verifier`: it does not match; handle spent.")
@blp.alt_response(409, description=CONFLICT)
@blp.alt_response(410, description="`expired`: unknown, expired or already completed handle.")
@blp.alt_response(503, description=UNAVAILABLE)
@limiter.limit(configured("RATELIMIT_OAUTH_COMPLETE_PER_IP"), key_func=get_remote_address)
@blp.arguments(CompleteSchema)
@blp.response(200, ProviderTokenPairSchema)
def complete(payload: dict[str, str]) -> Any:
    """Collect the tokens of a backend-run sign-in (single use).

    202 `{status: "pending"}` until the provider has sent the user back; then
    the token pair once. A failed sign-in answers its error (401, 409, 503).
    """
    pair = oauth.complete(**payload, client=client_info())
    return pair if pair is not None else (jsonify(status="pending"), 202)
