"""Schemas for the audit trail (admins read it through `GET /audit`)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from backend.models import AuditEvent
from backend.schemas.catalog import ID

TARGET_PATTERN = r"^[a-z][a-z_]{0,31}:[A-Za-z0-9_.@-]{1,64}$"


class AuditEventSchema(Schema):
    """One entry of the trail: who did what, to what, from where."""

    id = fields.Integer(dump_only=True)
    action = fields.String(dump_only=True, metadata={"example": "order.status_changed"})
    actor_id = fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "Null for anonymous or deleted"}
    )
    target = fields.Method(
        "_target",
        dump_only=True,
        allow_none=True,
        metadata={"type": "string", "nullable": True, "example": "order:12"},
    )
    ip = fields.String(dump_only=True)
    request_id = fields.String(dump_only=True)
    data = fields.Dict(dump_only=True, metadata={"description": "Details of the action"})
    created_at = fields.AwareDateTime(dump_only=True)

    def _target(self, event: AuditEvent) -> str | None:
        if event.target_type is None:
            return None
        return f"{event.target_type}:{event.target_id}"


class AuditQuerySchema(Schema):
    """Filters for the audit trail; all optional, combined with AND."""

    actor_id = fields.Integer(validate=ID, metadata={"description": "Who acted"})
    action = fields.String(
        validate=validate.Length(min=1, max=64), metadata={"example": "auth.login"}
    )
    target = fields.String(
        validate=validate.Regexp(TARGET_PATTERN),
        metadata={"description": "`type:id` of what was acted on", "example": "order:12"},
    )
    since = fields.AwareDateTime(metadata={"description": "At or after this time (ISO 8601)"})
    until = fields.AwareDateTime(metadata={"description": "Before this time (ISO 8601)"})
    after = fields.Integer(
        validate=ID, metadata={"description": "Only ids greater than this one (a feed's cursor)"}
    )

    @validates_schema
    def _time_range(self, data: dict[str, Any], **_kwargs: Any) -> None:
        for name in ("since", "until"):
            try:
                if data.get(name) is not None:
                    data[name] = data[name].astimezone(UTC)
            except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+05:00
                raise ValidationError("Out of range.", field_name=name) from exc
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since > until:
            raise ValidationError("since must not be after until.", field_name="since")
