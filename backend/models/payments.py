"""Payments: one per order, taken by the outside provider (Stripe), and the events it sent."""

from __future__ import annotations

from decimal import Decimal

from peewee import CharField, DecimalField, ForeignKeyField, IntegerField

from backend.models.base import BaseModel, UTCDateTimeField
from backend.models.catalog import Order

# A payment's life cycle: each status and the statuses the provider may move it to next.
# `failed` is not final: the customer may try another card with the same intent.
PAYMENT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "requires_payment": ("processing", "succeeded", "failed", "cancelled"),
    "processing": ("succeeded", "failed", "cancelled"),
    "failed": ("requires_payment", "processing", "succeeded", "cancelled"),
    "succeeded": (),
    "cancelled": (),
}
PAYMENT_STATUSES = tuple(PAYMENT_TRANSITIONS)
OPEN_PAYMENT_STATUSES = ("requires_payment", "processing")


class Payment(BaseModel):
    """An order's payment: the provider's PaymentIntent as we last heard of it.

    `attempt` numbers the intents made for the order (a cancelled intent is
    replaced by a new one); it is part of the provider's idempotency key.
    """

    order = ForeignKeyField(Order, unique=True, backref="payments", on_delete="CASCADE")
    order_id: int
    provider = CharField(max_length=16, default="stripe")
    provider_payment_id = CharField(max_length=255, unique=True)
    status = CharField(max_length=20, default="requires_payment", index=True)
    amount = DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    currency = CharField(max_length=3)
    client_secret = CharField(max_length=255, default="")
    attempt = IntegerField(default=1)
    checked_at = UTCDateTimeField(null=True)  # when reconciliation last asked the provider


class ProviderEvent(BaseModel):
    """A provider event (a webhook delivery) already applied: each is applied once."""

    provider = CharField(max_length=16)
    event_id = CharField(max_length=255)
    event_type = CharField(max_length=64)

    class Meta:
        indexes = ((("provider", "event_id"), True),)


__all__ = [
    "OPEN_PAYMENT_STATUSES",
    "PAYMENT_STATUSES",
    "PAYMENT_TRANSITIONS",
    "Payment",
    "ProviderEvent",
]
