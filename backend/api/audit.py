"""The audit trail, for admins: who did what, to what, from where, and when."""

from __future__ import annotations

from typing import Any

from flask_smorest.pagination import PaginationParameters

from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller
from backend.schemas.audit import AuditEventSchema, AuditQuerySchema
from backend.services import audit

blp = Blueprint("audit", __name__, url_prefix="/audit", description="The audit trail (admin).")


@blp.route("")
@auth_required(blp, role="admin")
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditEventSchema(many=True))
@blp.paginate()
def list_audit_events(query: dict[str, Any], pagination_parameters: PaginationParameters) -> Any:
    """List audit events, newest first (admin).

    Filters combine: `actor_id`, `action`, `target` (`type:id`, e.g.
    `order:12`), `since` (inclusive) and `until` (exclusive) as ISO 8601
    with an offset, and `after=<id>` for a feed that has seen up to that id.
    """
    page, total = audit.search(
        viewer=caller(),
        filters=audit.AuditFilter(**query),
        page=pagination_parameters.page,
        page_size=pagination_parameters.page_size,
    )
    pagination_parameters.item_count = total
    return page
