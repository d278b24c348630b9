"""Orders: place (with `Idempotency-Key`), list, read, cancel, and the admin status flow."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_smorest.pagination import PaginationParameters

from backend.api.blueprint import Blueprint
from backend.api.idempotency import HEADER_DOC as IDEMPOTENCY_KEY_DOC
from backend.api.idempotency import current_key, idempotent
from backend.api.security import auth_required, caller, client_info
from backend.schemas.catalog import (
    OrderCreateSchema,
    OrderQuerySchema,
    OrderSchema,
    OrderStatusSchema,
)
from backend.schemas.jobs import JobSchema, OrderExportSchema
from backend.schemas.payments import PayResultSchema
from backend.services import order_export, orders, payments
from backend.services.order_export import ExportFilter
from backend.services.orders import OrderItem

blp = Blueprint("orders", __name__, url_prefix="/orders", description="Orders.")


@blp.route("", methods=["POST"])
@blp.alt_response(
    409,
    description="`insufficient_stock` (each short product with requested and available "
    "quantities), or the same `Idempotency-Key` still in progress.",
)
@auth_required(blp)
@idempotent
@blp.arguments(OrderCreateSchema)
@blp.response(201, OrderSchema)
@blp.doc(parameters=[IDEMPOTENCY_KEY_DOC])
def place_order(payload: dict[str, Any]) -> Any:
    """Place an order; stock is taken at once.

    409 `insufficient_stock` lists each short product with requested and
    available quantities. Send an `Idempotency-Key` to make retries safe.
    """
    order, _created = orders.place_order(
        user=caller(),
        items=[OrderItem(**item) for item in payload["items"]],
        note=payload["note"],
        idempotency_key=current_key(),
    )
    return order


@blp.route("/export", methods=["POST"])
@auth_required(blp)
@blp.arguments(OrderExportSchema(), required=False)
@blp.response(202, JobSchema)
def export_orders(payload: dict[str, Any]) -> Any:
    """Export orders to a CSV file; answers 202 with the job.

    Users get their own orders; admins everyone's, narrowed by `user_id`,
    `status`, `created_from`, `created_to`. The job's result holds the
    `file_id` to download from `/files/{id}/content`.
    """
    job = order_export.start_export(actor=caller(), filters=ExportFilter(**(payload or {})))
    return job, 202, {"Location": url_for("jobs.get_job", job_id=job.id)}


@blp.route("")
@auth_required(blp)
@blp.arguments(OrderQuerySchema, location="query")
@blp.response(200, OrderSchema(many=True))
@blp.paginate()
def list_orders(query: dict[str, Any], pagination_parameters: PaginationParameters) -> Any:
    """List the caller's orders, newest first (admins: everyone's, or `?user_id=`)."""
    page, total = orders.list_orders(
        user=caller(),
        owner_id=query.get("user_id"),
        status=query.get("status"),
        page=pagination_parameters.page,
        page_size=pagination_parameters.page_size,
    )
    pagination_parameters.item_count = total
    return page


@blp.route("/<int:order_id>")
@auth_required(blp)
@blp.response(200, OrderSchema)
def get_order(order_id: int) -> Any:
    """Return one of the caller's orders (admins: any)."""
    return orders.get_order(user=caller(), order_id=order_id)


@blp.route("/<int:order_id>/cancel", methods=["POST"])
@blp.alt_response(409, description="`invalid_transition`: the order can no longer be cancelled.")
@auth_required(blp)
@blp.response(200, OrderSchema)
def cancel_order(order_id: int) -> Any:
    """Cancel a pending or confirmed order; its stock is returned.

    409 `invalid_transition` once shipped.
    """
    return orders.cancel_order(user=caller(), order_id=order_id, client=client_info())


@blp.route("/<int:order_id>/pay", methods=["POST"])
@blp.alt_response(409, description="`order_not_payable`: the order is not pending.")
@blp.alt_response(
    503,
    description="`provider_unavailable`: the payment provider cannot be reached (see "
    "`Retry-After`; retrying never charges twice), or `payments_not_configured`.",
)
@auth_required(blp)
@blp.response(201, PayResultSchema)
def pay_order(order_id: int) -> Any:
    """Pay one of the caller's pending orders: its payment with the provider.

    Creates the payment (a Stripe PaymentIntent), or returns the one the
    order has: retries never charge twice. Complete it in the app with the
    `client_secret`; the order is confirmed once the provider reports success.
    """
    return {"payment": payments.pay_order(user=caller(), order_id=order_id)}


@blp.route("/<int:order_id>/status", methods=["POST"])
@blp.alt_response(
    409, description="`invalid_transition`: not a next step of the order's life cycle."
)
@auth_required(blp, role="admin")
@blp.arguments(OrderStatusSchema)
@blp.response(200, OrderSchema)
def set_status(payload: dict[str, str], order_id: int) -> Any:
    """Move an order to its next status (admin).

    pending → confirmed → shipped → delivered; anything else is 409
    `invalid_transition`.
    """
    return orders.set_status(
        actor=caller(), order_id=order_id, status=payload["status"], client=client_info()
    )
