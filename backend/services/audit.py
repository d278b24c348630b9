"""The audit trail: who did what, to what, from where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backend.models import AuditEvent, User
from backend.services.access import require_role


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from; built by the HTTP layer, passed to services."""

    ip: str = ""
    user_agent: str = ""
    request_id: str = ""


def record(
    action: str,
    *,
    client: ClientInfo,
    actor: User | None = None,
    target: User | None = None,
    target_type: str | None = None,
    target_id: int | str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event; `target` is shorthand for a user target."""
    if target is not None:
        target_type, target_id = "user", target.id
    return AuditEvent.create(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip=client.ip,
        request_id=client.request_id,
        data=data or {},
    )


@dataclass(frozen=True)
class AuditFilter:
    """What to read of the trail; every part optional, all combined."""

    actor_id: int | None = None
    action: str | None = None
    target: str | None = None  # "type:id", e.g. "order:12"
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    after: int | None = None  # only ids greater than this


def search(
    *, viewer: User, filters: AuditFilter, page: int, page_size: int
) -> tuple[list[AuditEvent], int]:
    """Return one page of the trail, newest first, and how many entries match in all.

    Raises `Forbidden` unless `viewer` is an admin.
    """
    require_role(viewer, "admin")
    query = AuditEvent.select()
    if filters.actor_id is not None:
        query = query.where(AuditEvent.actor == filters.actor_id)
    if filters.action is not None:
        query = query.where(AuditEvent.action == filters.action)
    if filters.target is not None:
        target_type, _, target_id = filters.target.partition(":")
        query = query.where(
            (AuditEvent.target_type == target_type) & (AuditEvent.target_id == target_id)
        )
    if filters.since is not None:
        query = query.where(AuditEvent.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.created_at < filters.until)
    if filters.after is not None:
        query = query.where(AuditEvent.id > filters.after)
    ordered = query.order_by(AuditEvent.id.desc())
    return list(ordered.paginate(page, page_size)), query.count()
