"""Schemas for background jobs."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.models import ORDER_STATUSES
from backend.models.fields import MAX_ID


class ProgressSchema(Schema):
    """How far a job got."""

    done = fields.Integer()
    total = fields.Integer(allow_none=True)
    percent = fields.Float(allow_none=True)
    message = fields.String()


class JobSchema(Schema):
    """A background job as clients see it."""

    id = fields.String()
    kind = fields.String()
    status = fields.String(
        metadata={"enum": ["queued", "started", "succeeded", "failed", "cancelled"]}
    )
    progress = fields.Nested(ProgressSchema)
    result = fields.Raw(allow_none=True)
    error = fields.String(allow_none=True)
    cancel_requested = fields.Boolean(attribute="cancel_requested_flag")
    created_at = fields.AwareDateTime()
    started_at = fields.AwareDateTime(allow_none=True)
    finished_at = fields.AwareDateTime(allow_none=True)


class ImportFileSchema(Schema):
    """A CSV upload (multipart field `file`)."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class OrderExportSchema(Schema):
    """Which orders to export; `user_id` is for admins (others always get their own)."""

    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    user_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    created_from = fields.AwareDateTime(metadata={"description": "Orders created at or after"})
    created_to = fields.AwareDateTime(metadata={"description": "Orders created before"})
