"""Schemas for users and authentication."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.models.user import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from backend.schemas.fields import JsonBoolean

EMAIL = fields.Email(required=True, validate=validate.Length(max=254))
PASSWORD = fields.String(required=True, validate=validate.Length(min=1, max=256))
# A password being set: the policy's length bounds, stated in the OpenAPI document.
NEW_PASSWORD = fields.String(
    required=True,
    validate=validate.Length(
        min=MIN_PASSWORD_LENGTH,
        max=MAX_PASSWORD_LENGTH,
        error=f"Password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
    ),
)
FULL_NAME = fields.String(validate=validate.Length(max=200))


class UserSchema(Schema):
    """A user as clients see it."""

    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    full_name = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    email_verified = fields.Boolean(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)


class RegisterSchema(Schema):
    """Sign-up input."""

    email = EMAIL
    password = NEW_PASSWORD
    full_name = fields.String(load_default="", validate=validate.Length(max=200))


class LoginSchema(Schema):
    """Sign-in input."""

    email = EMAIL
    password = PASSWORD
    device_name = fields.String(load_default="", validate=validate.Length(max=100))


class TokenPairSchema(Schema):
    """Tokens returned by sign-in and refresh."""

    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Access token seconds"})
    user = fields.Nested(UserSchema, required=True)


class LogoutQuerySchema(Schema):
    """Which sessions to end."""

    scope = fields.String(
        load_default="local", validate=validate.OneOf(["local", "others", "global"])
    )


class SessionSchema(Schema):
    """A signed-in device."""

    id = fields.Integer()
    device_name = fields.String()
    user_agent = fields.String()
    ip = fields.String()
    created_at = fields.AwareDateTime()
    last_seen_at = fields.AwareDateTime()
    current = fields.Boolean()


class EmailSchema(Schema):
    """An email address (forgot password)."""

    email = EMAIL


class ResetPasswordSchema(Schema):
    """A mailed reset token and the new password."""

    token = fields.String(required=True, validate=validate.Length(min=1, max=200))
    password = NEW_PASSWORD


class TokenSchema(Schema):
    """A mailed verification token."""

    token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class ProfileUpdateSchema(Schema):
    """What a user may change about themselves."""

    full_name = fields.String(required=True, validate=validate.Length(max=200))


class ChangePasswordSchema(Schema):
    """Current and new password."""

    current_password = PASSWORD
    password = NEW_PASSWORD


class AdminUserUpdateSchema(Schema):
    """What an admin may change about a user."""

    role = fields.String(validate=validate.OneOf(["user", "admin"]))
    is_active = JsonBoolean()
