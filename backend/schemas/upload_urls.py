"""Schemas for upload URLs (for Flet's `FilePicker.upload`)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.schemas.files import FileSchema
from backend.schemas.jobs import JobSchema


class UploadUrlRequestSchema(Schema):
    """What the file sent to the URL will be."""

    filename = fields.String(
        required=True,
        validate=validate.Length(min=1, max=255),
        metadata={"description": "The file's name; its extension must match its content"},
    )
    content_type = fields.String(
        load_default=None,
        validate=validate.Length(max=127),
        metadata={"description": "The declared type; the bytes must be of this type (else 415)"},
    )
    size = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1),
        metadata={
            "description": "The file's size in bytes: the URL takes no more (413 over "
            "`FILES_MAX_BYTES`)"
        },
    )
    purpose = fields.String(
        load_default="upload",
        validate=validate.OneOf(["upload", "product_image"]),
        metadata={"description": "`product_image` (admins) for an image to attach to a product"},
    )


class ImportUploadUrlRequestSchema(Schema):
    """What the CSV sent to the URL will be (everything optional)."""

    size = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1),
        metadata={
            "description": "The CSV's size in bytes: the URL takes no more (413 over "
            "`IMPORT_MAX_BYTES`)"
        },
    )


class UploadUrlSchema(Schema):
    """A signed, single-use URL that takes one file's raw bytes by PUT, with no token."""

    upload_id = fields.Integer(
        metadata={"description": "Ask `GET /files/upload-urls/{upload_id}` what the PUT made"}
    )
    upload_url = fields.String(
        metadata={
            "format": "uri",
            "description": "Absolute; PUT the raw bytes here, no Authorization or Content-Type "
            "needed",
        }
    )
    method = fields.String(metadata={"enum": ["PUT"]})
    expires_at = fields.AwareDateTime(
        metadata={"description": "After this the URL answers 410 `expired`"}
    )
    max_bytes = fields.Integer(metadata={"description": "The most bytes the URL takes (413)"})


class UploadOutcomeSchema(Schema):
    """What became of an upload URL (Flet's `FilePicker.upload` does not show the answer)."""

    upload_id = fields.Integer()
    status = fields.String(
        metadata={
            "enum": ["pending", "completed", "expired"],
            "description": "`pending` until a PUT stored the bytes (or it expires)",
        }
    )
    expires_at = fields.AwareDateTime()
    file = fields.Nested(
        FileSchema, allow_none=True, metadata={"description": "The stored file (file URLs)"}
    )
    job = fields.Nested(
        JobSchema, allow_none=True, metadata={"description": "The import job (import URLs)"}
    )
