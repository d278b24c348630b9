"""Schemas for provider sign-in and linked identities."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.schemas.users import TokenPairSchema

# RFC 7636: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
PKCE_VALUE = validate.Regexp(r"^[A-Za-z0-9._~-]{43,128}$", error="43 to 128 of A-Z a-z 0-9 - . _ ~")
PROVIDER_TOKEN = fields.String(
    required=True,
    validate=validate.Length(min=1, max=4096),
    metadata={"description": "The provider's access token (what Flet's `page.login` holds)."},
)


class ProviderSchema(Schema):
    """A sign-in provider this deployment offers."""

    name = fields.String(required=True, metadata={"example": "github"})
    display_name = fields.String(required=True, metadata={"example": "GitHub"})


class ProviderTokenSchema(Schema):
    """A provider's access token to sign in with."""

    access_token = PROVIDER_TOKEN
    device_name = fields.String(load_default="", validate=validate.Length(max=100))


class LinkSchema(Schema):
    """A provider's access token to link to the caller's account."""

    access_token = PROVIDER_TOKEN


class ProviderTokenPairSchema(TokenPairSchema):
    """Tokens, as sign-in returns them, and whether the account was made by this sign-in."""

    created = fields.Boolean(required=True)


class StartSchema(Schema):
    """A PKCE challenge for a backend-run sign-in (RFC 7636, S256 only)."""

    code_challenge = fields.String(required=True, validate=PKCE_VALUE)
    code_challenge_method = fields.String(required=True, validate=validate.OneOf(["S256"]))
    redirect_uri = fields.String(
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "Where the callback page sends the user; in OAUTH_REDIRECT_URIS"},
    )


class StartedSchema(Schema):
    """A started sign-in: open `authorization_url`, then complete with `handle`."""

    authorization_url = fields.String(required=True)
    handle = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds to complete"})


class CallbackQuerySchema(Schema):
    """What the provider adds to our callback URL."""

    # No upper bound on `code` and `error`: providers' codes vary in length (Azure's run to
    # a kilobyte or more) and the front server's request-line limit bounds them anyway
    # (gunicorn answers 414 beyond 8190 bytes, before the app sees the request).
    state = fields.String(required=True, validate=validate.Length(min=1, max=64))
    code = fields.String(validate=validate.Length(min=1))
    error = fields.String()


class CompleteSchema(Schema):
    """The handle from `start` and the PKCE verifier whose digest was the challenge."""

    handle = fields.String(required=True, validate=validate.Length(min=1, max=100))
    code_verifier = fields.String(required=True, validate=PKCE_VALUE)


class PendingSchema(Schema):
    """The provider has not sent the user back yet: poll again."""

    status = fields.String(required=True, validate=validate.OneOf(["pending"]))


class IdentitySchema(Schema):
    """A provider account linked to the caller's account."""

    provider = fields.String(required=True)
    provider_user_id = fields.String(required=True)
    email = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)
