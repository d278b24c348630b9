"""The caller's notifications: list them, mark one or all read."""

from __future__ import annotations

from typing import Any

from flask_smorest.pagination import PaginationParameters

from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller
from backend.schemas.notifications import (
    NotificationQuerySchema,
    NotificationSchema,
    ReadAllResultSchema,
)
from backend.services import notifications

blp = Blueprint(
    "notifications", __name__, url_prefix="/notifications", description="Notifications."
)


@blp.route("")
@auth_required(blp)
@blp.arguments(NotificationQuerySchema, location="query")
@blp.response(200, NotificationSchema(many=True))
@blp.paginate()
def list_notifications(query: dict[str, Any], pagination_parameters: PaginationParameters) -> Any:
    """List the caller's notifications, newest first.

    `unread=true` keeps the unread ones; `after=<id>` keeps ids greater than
    it (what a feed has not seen yet).
    """
    page, total = notifications.list_for(
        user=caller(),
        unread_only=query["unread"],
        after=query["after"],
        page=pagination_parameters.page,
        page_size=pagination_parameters.page_size,
    )
    pagination_parameters.item_count = total
    return page


@blp.route("/<int:notification_id>/read", methods=["POST"])
@auth_required(blp)
@blp.response(200, NotificationSchema)
def mark_read(notification_id: int) -> Any:
    """Mark one notification read.

    Idempotent: marking it again keeps the first `read_at`. 404 `not_found`
    for an unknown id or someone else's notification.
    """
    return notifications.mark_read(user=caller(), notification_id=notification_id)


@blp.route("/read-all", methods=["POST"])
@auth_required(blp)
@blp.response(200, ReadAllResultSchema)
def mark_all_read() -> dict[str, int]:
    """Mark every notification of the caller read.

    Returns `{"updated": n}`, the number that were unread until now.
    """
    return {"updated": notifications.mark_all_read(user=caller())}
