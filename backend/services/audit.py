"""The audit trail: who did what, to what, from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.models import AuditEvent, User


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
