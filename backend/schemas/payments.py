"""Schemas for payments: an order's payment, what paying answers, the webhook's reply."""

from __future__ import annotations

from marshmallow import Schema, fields

from backend.models import PAYMENT_STATUSES
from backend.schemas.fields import MONEY_DOC, Money


class PaymentSchema(Schema):
    """An order's payment as it appears in orders and `payment.*` events (no client secret).

    Orders and events also reach admins and outgoing webhooks: the client
    secret, which lets its holder complete the payment, is only in the answer
    to `POST /orders/{id}/pay` (`PaymentWithSecretSchema`).
    """

    id = fields.Integer()
    order_id = fields.Integer()
    provider = fields.String(metadata={"example": "stripe"})
    provider_payment_id = fields.String(metadata={"description": "The PaymentIntent's id"})
    status = fields.String(metadata={"enum": list(PAYMENT_STATUSES)})
    amount = Money(as_string=True, metadata=MONEY_DOC)
    currency = fields.String()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class PaymentWithSecretSchema(PaymentSchema):
    """The payment for its owner, with the `client_secret` that completes it in the app."""

    client_secret = fields.String(
        metadata={"description": "For the provider's client SDK (Stripe.js, the mobile SDKs)"}
    )


class PayResultSchema(Schema):
    """What paying an order answers."""

    payment = fields.Nested(PaymentWithSecretSchema, required=True)


class WebhookResultSchema(Schema):
    """What the webhook answers the provider."""

    result = fields.String(
        metadata={"enum": ["applied", "unchanged", "duplicate", "ignored"]},
    )
