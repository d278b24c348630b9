"""Outgoing webhooks: the endpoints admins subscribe, one delivery row per event and endpoint."""

from __future__ import annotations

from peewee import BooleanField, CharField, ForeignKeyField, IntegerField, TextField

from backend.models.base import BaseModel, UTCDateTimeField
from backend.models.fields import JSONTextField

DELIVERY_STATUSES = ("pending", "succeeded", "failed")
URL_MAX_LENGTH = 2000
# The domain events an endpoint may subscribe to (the SSE types), and `family.*` wildcards.
WEBHOOK_EVENT_TYPES = (
    "order.created",
    "order.status_changed",
    "payment.failed",
    "payment.succeeded",
    "product.created",
    "product.deleted",
    "product.updated",
)
WEBHOOK_WILDCARDS = tuple(sorted({f"{t.split('.')[0]}.*" for t in WEBHOOK_EVENT_TYPES})) + ("*",)
TEST_EVENT_TYPE = "webhook.test"  # sent by `POST /webhooks/{id}/test`, whatever the subscription


class WebhookEndpoint(BaseModel):
    """A URL that receives the events it subscribes to, signed with its secret.

    `events` holds event types (`order.created`) and family wildcards
    (`product.*`). After a rotation `previous_secret` still signs, as a second
    signature, until `previous_secret_until`. `consecutive_failures` counts the
    failed attempts since the last success (`failing_since`: the first of them);
    a long enough run, or a 410, disables the endpoint (`disabled_reason`).
    """

    url = CharField(max_length=URL_MAX_LENGTH)
    events = JSONTextField(default=list)
    description = CharField(max_length=500, default="")
    is_active = BooleanField(default=True, index=True)
    secret = CharField(max_length=100)
    previous_secret = CharField(max_length=100, null=True)
    previous_secret_until = UTCDateTimeField(null=True)
    consecutive_failures = IntegerField(default=0)
    failing_since = UTCDateTimeField(null=True)
    disabled_reason = CharField(max_length=200, null=True)
    disabled_at = UTCDateTimeField(null=True)


class WebhookDelivery(BaseModel):
    """One event on its way to one endpoint, with the outcome of its latest attempt.

    `webhook_id` is the `webhook-id` header: the same on every attempt and on a
    redelivery (a new row with the same id). A pending delivery is due at
    `next_attempt_at`; a dispatcher claims it by moving `next_attempt_at` to the
    end of its lease (`claimed_until`) under its `claim_token`, so a delivery
    whose worker died is due again once the lease has run out.
    """

    endpoint = ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
    endpoint_id: int
    webhook_id = CharField(max_length=64, index=True)
    event_id = CharField(max_length=64, index=True)
    event_type = CharField(max_length=64)
    payload = JSONTextField(default=dict)
    occurred_at = UTCDateTimeField()
    status = CharField(max_length=16, default="pending")
    attempts = IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(null=True)
    claimed_until = UTCDateTimeField(null=True)
    claim_token = CharField(max_length=32, null=True)
    response_status = IntegerField(null=True)
    response_body = TextField(null=True)
    last_error = CharField(max_length=500, null=True)
    duration_ms = IntegerField(null=True)
    delivered_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = (
            (("status", "next_attempt_at"), False),  # the dispatcher's "due" query
            (("endpoint", "id"), False),  # an endpoint's log, newest first
        )
