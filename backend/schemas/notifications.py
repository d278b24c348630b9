"""Schemas for notifications."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class NotificationSchema(Schema):
    """A notification as its owner sees it."""

    id = fields.Integer(dump_only=True)
    kind = fields.String(dump_only=True, metadata={"example": "order.shipped"})
    title = fields.String(dump_only=True)
    body = fields.String(dump_only=True)
    data = fields.Dict(dump_only=True, metadata={"description": "Details to link to"})
    read_at = fields.AwareDateTime(
        dump_only=True, allow_none=True, metadata={"description": "Null while unread"}
    )
    created_at = fields.AwareDateTime(dump_only=True)


class NotificationQuerySchema(Schema):
    """Filters for the notification list."""

    unread = fields.Boolean(
        load_default=False, metadata={"description": "Only notifications not read yet"}
    )
    after = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0),
        metadata={"description": "Only ids greater than this one (the last one a feed has seen)"},
    )


class ReadAllResultSchema(Schema):
    """What marking everything read changed."""

    updated = fields.Integer(
        required=True, metadata={"description": "How many notifications were marked read"}
    )
