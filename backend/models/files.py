"""Stored files: uploads, product images and exports, with their image renditions."""

from __future__ import annotations

from typing import Any

from peewee import BigIntegerField, CharField, ForeignKeyField

from backend.models.base import BaseModel, UTCDateTimeField
from backend.models.fields import JSONTextField
from backend.models.user import User

FILE_PURPOSES = ("upload", "product_image", "export")
# Rendition name → the longest side in pixels; smaller images are never enlarged.
RENDITIONS: dict[str, int] = {"thumb": 160, "mobile": 640, "desktop": 1600}


class File(BaseModel):
    """A stored file: who owns it, what it is, and where its bytes are (`sha256`).

    `variants` maps a rendition name (`thumb`, `mobile`, `desktop`) to
    `{sha256, content_type, size, width, height}`; it fills in when the
    rendition job has run.
    """

    owner = ForeignKeyField(User, null=True, backref="files", on_delete="SET NULL")
    owner_id: int | None
    filename = CharField(max_length=255)
    content_type = CharField(max_length=127)
    size = BigIntegerField()
    sha256 = CharField(max_length=64, index=True)
    purpose = CharField(max_length=32, default="upload", index=True)
    variants = JSONTextField(default=dict)
    width = BigIntegerField(null=True)
    height = BigIntegerField(null=True)
    rendition_job_id = CharField(max_length=64, null=True)
    expires_at = UTCDateTimeField(null=True, index=True)

    @property
    def is_image(self) -> bool:
        """Whether the file is a raster image renditions can be made of."""
        return bool(self.content_type.startswith("image/"))

    def variant(self, name: str) -> dict[str, Any] | None:
        """Return a ready rendition's description, or None."""
        found: dict[str, Any] | None = (self.variants or {}).get(name)
        return found


class UploadUrl(BaseModel):
    """An upload URL handed out (`POST /files/upload-urls`): what its one PUT may store.

    The URL carries only a signed random id; its sha256 (`token_hash`) finds this
    row. `used_at` is set when a PUT claims the URL (one conditional UPDATE, so one
    of two racing PUTs wins) and cleared again if that PUT fails; `file` (or, for
    an import, `job_id`) is what the PUT made, for the app to look up afterwards.
    """

    owner = ForeignKeyField(User, backref="upload_urls", on_delete="CASCADE")
    owner_id: int
    session_id = BigIntegerField()
    kind = CharField(max_length=16)
    token_hash = CharField(max_length=64, unique=True)
    purpose = CharField(max_length=32)
    filename = CharField(max_length=255)
    content_type = CharField(max_length=127, null=True)
    max_bytes = BigIntegerField()
    expires_at = UTCDateTimeField(index=True)
    used_at = UTCDateTimeField(null=True)
    file = ForeignKeyField(File, null=True, on_delete="SET NULL")
    file_id: int | None
    job_id = CharField(max_length=64, null=True)
    completed_at = UTCDateTimeField(null=True)
