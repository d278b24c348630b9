"""The payment provider's webhook: Stripe's events about our PaymentIntents."""

from __future__ import annotations

from typing import Any

from flask import request

from backend.api.blueprint import Blueprint
from backend.ratelimit import limiter
from backend.schemas.payments import WebhookResultSchema
from backend.services import payments

blp = Blueprint(
    "payments", __name__, url_prefix="/payments", description="The payment provider's webhook."
)
SIGNATURE_HEADER = "Stripe-Signature"


@blp.route("/webhook", methods=["POST"])
@limiter.exempt  # the provider's bursts are not one client's writes; the signature guards it
@blp.alt_response(
    400,
    description="`invalid_signature`: the `Stripe-Signature` is missing, wrong, or older "
    "than 5 minutes; `invalid_event`: the body is not an event. Nothing is changed.",
)
@blp.alt_response(503, description="`payments_not_configured`: no webhook secret is set.")
@blp.response(200, WebhookResultSchema)
@blp.doc(
    parameters=[{"in": "header", "name": SIGNATURE_HEADER, "required": True,
                 "schema": {"type": "string"}}],
    requestBody={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
)  # fmt: skip
def webhook() -> Any:
    """Receive one of the provider's events (anonymous; verified by its signature).

    `payment_intent.succeeded` confirms the order, `payment_failed`,
    `processing` and `canceled` move its payment; each event id is applied
    once, and other types are answered 200 and ignored.
    """
    result = payments.handle_webhook(
        payload=request.get_data(cache=False), signature=request.headers.get(SIGNATURE_HEADER)
    )
    return {"result": result}
