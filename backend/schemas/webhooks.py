"""Schemas for outgoing webhooks: endpoints, their secret, and their delivery log."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from backend.models import (
    DELIVERY_STATUSES,
    WEBHOOK_EVENT_TYPES,
    WEBHOOK_WILDCARDS,
    WebhookEndpoint,
    utcnow,
)
from backend.models.webhooks import URL_MAX_LENGTH
from backend.schemas.fields import JsonBoolean

SUBSCRIBABLE = [*WEBHOOK_EVENT_TYPES, *WEBHOOK_WILDCARDS]
URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s]*)?$"


def _url(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=[
            validate.Length(max=URL_MAX_LENGTH),
            validate.URL(schemes={"http", "https"}, require_tld=False),
        ],
        metadata={
            "pattern": URL_PATTERN,
            "description": "http(s); must resolve to public addresses only (422 otherwise, "
            "unless `WEBHOOKS_ALLOW_PRIVATE_NETWORKS=1`)",
            "example": "https://example.com/hooks/shop",
        },
        **kwargs,
    )


def _events(**kwargs: Any) -> fields.List:
    return fields.List(
        fields.String(validate=validate.OneOf(SUBSCRIBABLE)),
        validate=validate.Length(min=1, max=len(SUBSCRIBABLE)),
        metadata={
            "description": "Event types, or `family.*` wildcards (`*`: every event)",
            "example": ["order.created", "product.*"],
        },
        **kwargs,
    )


class WebhookCreateSchema(Schema):
    """A new endpoint: where to send, which events, a note for admins."""

    url = _url(required=True)
    events = _events(required=True)
    description = fields.String(load_default="", validate=validate.Length(max=500))


class WebhookUpdateSchema(Schema):
    """Changes to an endpoint; `is_active: true` re-enables a disabled one."""

    url = _url()
    events = _events()
    description = fields.String(validate=validate.Length(max=500))
    is_active = JsonBoolean()


def _previous_secret_expires_at(endpoint: WebhookEndpoint) -> Any:
    until = endpoint.previous_secret_until
    return until if until is not None and until > utcnow() else None


class WebhookSchema(Schema):
    """An endpoint as admins see it (the secret is shown only on create and on rotate)."""

    id = fields.Integer(dump_only=True)
    url = fields.String(dump_only=True)
    events = fields.List(fields.String(), dump_only=True)
    description = fields.String(dump_only=True)
    is_active = fields.Boolean(
        dump_only=True, metadata={"description": "False once disabled (by an admin, a 410, "
                                  "or a run of failures: see `disabled_reason`)"}
    )  # fmt: skip
    disabled_reason = fields.String(dump_only=True, allow_none=True)
    disabled_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    consecutive_failures = fields.Integer(
        dump_only=True, metadata={"description": "Failed attempts since the last success"}
    )
    previous_secret_expires_at = fields.Function(
        _previous_secret_expires_at,
        dump_only=True,
        metadata={
            "type": "string",
            "format": "date-time",
            "nullable": True,
            "description": "Until then the secret before the last rotation signs too",
        },
    )
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class WebhookCreatedSchema(WebhookSchema):
    """An endpoint just made, with its signing secret (shown this once)."""

    secret = fields.String(
        dump_only=True, metadata={"description": "`whsec_<base64>`: verify deliveries with it"}
    )


class WebhookSecretSchema(Schema):
    """The new signing secret after a rotation."""

    secret = fields.String(dump_only=True)
    previous_secret_expires_at = fields.Function(
        _previous_secret_expires_at,
        dump_only=True,
        metadata={"type": "string", "format": "date-time", "nullable": True},
    )


class DeliverySchema(Schema):
    """One event's delivery to an endpoint, with its latest attempt."""

    id = fields.Integer(dump_only=True)
    endpoint_id = fields.Integer(dump_only=True)
    webhook_id = fields.String(
        dump_only=True, metadata={"description": "The `webhook-id` header (same on retries "
                                  "and redeliveries)"}
    )  # fmt: skip
    event_id = fields.String(dump_only=True)
    event_type = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(DELIVERY_STATUSES)})
    attempts = fields.Integer(dump_only=True)
    response_status = fields.Integer(dump_only=True, allow_none=True)
    response_body = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "Its first 1 KiB"}
    )
    last_error = fields.String(dump_only=True, allow_none=True)
    duration_ms = fields.Integer(dump_only=True, allow_none=True)
    next_attempt_at = fields.AwareDateTime(
        dump_only=True, allow_none=True, metadata={"description": "While pending"}
    )
    created_at = fields.AwareDateTime(dump_only=True)
    delivered_at = fields.AwareDateTime(dump_only=True, allow_none=True)
