"""Outgoing webhooks (admin): endpoints, their secrets, tests and the delivery log.

Deliveries are `POST`s of `{"type", "timestamp", "data"}` signed per Standard
Webhooks; they are recorded with the change they describe and sent by workers
(see `backend.services.webhooks` and `backend.services.webhook_delivery`).
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_smorest.pagination import PaginationParameters

from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller, client_info
from backend.schemas.webhooks import (
    DeliverySchema,
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookSchema,
    WebhookSecretSchema,
    WebhookUpdateSchema,
)
from backend.services import webhooks

blp = Blueprint(
    "webhooks", __name__, url_prefix="/webhooks",
    description="Outgoing webhooks (admin): signed POSTs of domain events to your URLs.",
)  # fmt: skip

INACTIVE = "`webhook_inactive`: the webhook is disabled; enable it first."
URL_REFUSED = (
    "`url_not_allowed`: the URL does not resolve, or resolves to a private, loopback, "
    "link-local or metadata address (unless `WEBHOOKS_ALLOW_PRIVATE_NETWORKS=1`); or "
    "`validation_error`."
)


def _log_location(endpoint_id: int) -> dict[str, str]:
    return {"Location": url_for("webhooks.list_deliveries", endpoint_id=endpoint_id)}


@blp.route("", methods=["POST"])
@blp.alt_response(422, description=URL_REFUSED)
@auth_required(blp, role="admin")
@blp.arguments(WebhookCreateSchema)
@blp.response(201, WebhookCreatedSchema)
def create_webhook(payload: dict[str, Any]) -> Any:
    """Subscribe a URL to events (admin); the answer shows its signing secret, this once.

    `events` are event types (`order.created`, `product.updated`, ...) or
    wildcards (`product.*`, `*`). Verify deliveries with the secret
    (`whsec_...`) and the `standardwebhooks` library.
    """
    endpoint = webhooks.create_endpoint(actor=caller(), **payload, client=client_info())
    return endpoint, 201, {"Location": url_for("webhooks.get_webhook", endpoint_id=endpoint.id)}


@blp.route("")
@auth_required(blp, role="admin")
@blp.response(200, WebhookSchema(many=True))
@blp.paginate()
def list_webhooks(pagination_parameters: PaginationParameters) -> Any:
    """List the webhook endpoints, oldest first (admin)."""
    page, total = webhooks.list_endpoints(
        actor=caller(), page=pagination_parameters.page, page_size=pagination_parameters.page_size
    )
    pagination_parameters.item_count = total
    return page


@blp.route("/<int:endpoint_id>")
@auth_required(blp, role="admin")
@blp.response(200, WebhookSchema)
def get_webhook(endpoint_id: int) -> Any:
    """Return one webhook endpoint (admin)."""
    return webhooks.get_endpoint(actor=caller(), endpoint_id=endpoint_id)


@blp.route("/<int:endpoint_id>", methods=["PATCH"])
@blp.alt_response(422, description=URL_REFUSED)
@auth_required(blp, role="admin")
@blp.arguments(WebhookUpdateSchema)
@blp.response(200, WebhookSchema)
def update_webhook(payload: dict[str, Any], endpoint_id: int) -> Any:
    """Change a webhook's URL, events, description or active flag (admin).

    `is_active: false` fails its pending deliveries; `is_active: true`
    re-enables a disabled webhook and clears its failure count.
    """
    return webhooks.update_endpoint(
        actor=caller(), endpoint_id=endpoint_id, changes=payload, client=client_info()
    )


@blp.route("/<int:endpoint_id>", methods=["DELETE"])
@auth_required(blp, role="admin")
@blp.response(204)
def delete_webhook(endpoint_id: int) -> None:
    """Delete a webhook endpoint and its delivery log (admin)."""
    webhooks.delete_endpoint(actor=caller(), endpoint_id=endpoint_id, client=client_info())


@blp.route("/<int:endpoint_id>/rotate-secret", methods=["POST"])
@auth_required(blp, role="admin")
@blp.response(200, WebhookSecretSchema)
def rotate_secret(endpoint_id: int) -> Any:
    """Give a webhook a new signing secret (admin); the old one signs too for 24 h.

    During those 24 h every delivery carries two signatures (`v1,<new> v1,<old>`),
    so receivers can switch to the new secret at any moment of the window.
    """
    return webhooks.rotate_secret(actor=caller(), endpoint_id=endpoint_id, client=client_info())


@blp.route("/<int:endpoint_id>/test", methods=["POST"])
@blp.alt_response(409, description=INACTIVE)
@auth_required(blp, role="admin")
@blp.response(202, DeliverySchema)
def test_webhook(endpoint_id: int) -> Any:
    """Send a `webhook.test` delivery to a webhook (admin); follow it in the delivery log."""
    delivery = webhooks.send_test(actor=caller(), endpoint_id=endpoint_id)
    return delivery, 202, _log_location(endpoint_id)


@blp.route("/<int:endpoint_id>/deliveries")
@auth_required(blp, role="admin")
@blp.response(200, DeliverySchema(many=True))
@blp.paginate()
def list_deliveries(endpoint_id: int, pagination_parameters: PaginationParameters) -> Any:
    """List a webhook's deliveries, newest first (admin), with each one's latest attempt."""
    page, total = webhooks.list_deliveries(
        actor=caller(), endpoint_id=endpoint_id, page=pagination_parameters.page,
        page_size=pagination_parameters.page_size,
    )  # fmt: skip
    pagination_parameters.item_count = total
    return page


@blp.route("/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@blp.alt_response(409, description=INACTIVE)
@auth_required(blp, role="admin")
@blp.response(202, DeliverySchema)
def redeliver(endpoint_id: int, delivery_id: int) -> Any:
    """Send a delivery again (admin): a new delivery with the same `webhook-id` and body."""
    delivery = webhooks.redeliver(actor=caller(), endpoint_id=endpoint_id, delivery_id=delivery_id)
    return delivery, 202, _log_location(endpoint_id)
