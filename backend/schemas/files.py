"""Schemas for files."""

from __future__ import annotations

from typing import Any

from flask import url_for
from marshmallow import Schema, fields, validate

from backend.models import RENDITIONS, File

VERSION_CHARS = 16  # of the sha256, in `?v=`: enough to make a URL content-addressed


def content_url(file_id: int, *, key: str, variant: str | None = None) -> str:
    """The download URL of one version of a file; it never changes meaning (`?v=`)."""
    return url_for(
        "files.download", file_id=file_id, variant=variant, v=key[:VERSION_CHARS], _external=False
    )


class VariantSchema(Schema):
    """A ready rendition."""

    width = fields.Integer()
    height = fields.Integer()
    size = fields.Integer()
    content_type = fields.String()
    sha256 = fields.String()
    url = fields.String(metadata={"description": "Content-addressed (cacheable forever)"})


class FileSchema(Schema):
    """A stored file's metadata."""

    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    purpose = fields.String()
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    variants = fields.Method(
        "dump_variants",
        metadata={
            "type": "object",
            "description": "Ready renditions by name (thumb, mobile, desktop): "
            "width, height, size, content_type, sha256, url",
        },
    )
    rendition_job_id = fields.String(
        allow_none=True, metadata={"description": "The job making the renditions (images)"}
    )
    url = fields.Method("dump_url", metadata={"type": "string"})
    expires_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()

    def dump_variants(self, record: File) -> dict[str, Any]:
        """Each ready rendition with its content-addressed URL."""
        return {
            name: VariantSchema().dump(
                {**info, "url": content_url(record.id, key=info["sha256"], variant=name)}
            )
            for name, info in sorted((record.variants or {}).items())
        }

    def dump_url(self, record: File) -> str:
        """The original's content-addressed URL."""
        return content_url(record.id, key=record.sha256)


class UploadSchema(Schema):
    """A multipart upload: the file (field `file`) and what it is for."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    purpose = fields.String(
        load_default="upload",
        validate=validate.OneOf(["upload", "product_image"]),
        metadata={"description": "`product_image` (admins) for an image to attach to a product"},
    )


class ContentQuerySchema(Schema):
    """Which version of a file to download."""

    variant = fields.String(
        validate=validate.OneOf(list(RENDITIONS)),
        metadata={"description": "A rendition; the original is served until it is ready"},
    )
    w = fields.Integer(
        validate=validate.Range(min=1, max=100_000),
        metadata={"description": "Smallest rendition at least this wide"},
    )
    v = fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "Content version from `url` (makes the response immutable)"},
    )
