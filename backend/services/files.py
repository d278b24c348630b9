"""Files: uploads checked and stored, who may read them, renditions, deletion, cleanup.

Bytes live in `backend.storage` under their sha256; a `File` row says who
owns them and what they are. An active product's image is public, every other
file is private to its owner (and admins) through `services.access.get_visible`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

import redis
from flask import current_app
from peewee import JOIN

from backend.db import db
from backend.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from backend.models import File, Job, Product, User, utcnow
from backend.services import job_tracking
from backend.services.access import get_visible, is_admin, require_role
from backend.services.media import (
    RENDITION_TYPE,
    RENDITIONS,
    SNIFF_BYTES,
    check_type,
    image_size,
    make_renditions,
    safe_filename,
    sniff,
)
from backend.storage import Download, Incoming, Readable, StoredObject, TooLarge, get_storage
from backend.storage import relative_path as storage_relative_path

PUBLIC_PURPOSES = ("product_image",)
RENDERABLE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class _Prefixed:
    """A stream that yields `head` again before the rest of `rest`."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            chunk, self._head = (
                (self._head, b"") if size < 0 else (self._head[:size], self._head[size:])
            )
            return chunk
        return self._rest.read(size)


def upload(
    *,
    owner: User,
    stream: IO[bytes],
    filename: str | None,
    declared_type: str | None,
    purpose: str = "upload",
    max_bytes: int | None = None,
) -> File:
    """Store an uploaded file after checking what it really is; start its renditions.

    Raises `ValidationFailed` (`empty_file`, `image_too_large`,
    `invalid_image`), `UnsupportedMediaType` (type not allowed, or not what
    the client declared), `PayloadTooLarge` (over `max_bytes`, at most
    `FILES_MAX_BYTES`),
    `Forbidden` (`product_image` uploads are for admins). Nothing is kept
    when it fails.
    """
    if purpose == "product_image":
        require_role(owner, "admin")
    name = safe_filename(filename)
    head = stream.read(SNIFF_BYTES)
    if not head:
        raise ValidationFailed("The file is empty.", error="empty_file")
    content_type = sniff(head)
    check_type(
        sniffed=content_type,
        declared=declared_type,
        filename=name,
        allowed=current_app.config["FILES_ALLOWED_TYPES"],
    )
    # An upload received straight into storage is adopted as it is (no copy).
    source = stream if isinstance(stream, Incoming) else _Prefixed(head, stream)
    stored = _store(source, max_bytes)
    try:
        dimensions = _dimensions(stored.key) if content_type in RENDERABLE_TYPES else None
        record = _record(owner, name, content_type, stored, purpose, dimensions)
    except BaseException:
        _discard_unreferenced([stored.key])
        raise
    return record


def _store(source: Readable, max_bytes: int | None) -> StoredObject:
    limit = int(current_app.config["FILES_MAX_BYTES"])
    limit = limit if max_bytes is None else min(limit, max_bytes)
    try:
        return get_storage().put(source, max_bytes=limit)
    except TooLarge as exc:
        raise PayloadTooLarge(f"Files may be at most {limit} bytes.") from exc


def _dimensions(key: str) -> tuple[int, int]:
    with get_storage().open(key) as source:
        return image_size(source, max_pixels=int(current_app.config["FILES_MAX_PIXELS"]))


def _record(
    owner: User,
    name: str,
    content_type: str,
    stored: StoredObject,
    purpose: str,
    dimensions: tuple[int, int] | None,
) -> File:
    width, height = dimensions or (None, None)
    with db.atomic():
        record = File.create(
            owner=owner, filename=name, content_type=content_type, size=stored.size,
            sha256=stored.key, purpose=purpose, width=width, height=height,
        )  # fmt: skip
    if dimensions is not None:
        try:
            start_renditions(record)
        except redis.RedisError:
            File.delete().where(File.id == record.id).execute()
            raise
    return record


def store_generated(
    *,
    owner: User,
    source: IO[bytes],
    filename: str,
    content_type: str,
    purpose: str,
    expires_at: datetime | None = None,
) -> File:
    """Store bytes the system made (an export, say) as a file owned by `owner`."""
    stored = get_storage().put(source)
    with db.atomic():
        return File.create(
            owner=owner, filename=safe_filename(filename), content_type=content_type,
            size=stored.size, sha256=stored.key, purpose=purpose, expires_at=expires_at,
        )  # fmt: skip


def start_renditions(record: File) -> Job:
    """Queue the job that makes `record`'s renditions; remember its id on the file."""
    job = job_tracking.submit(
        owner=record.owner, kind="files.renditions", func="jobs.files.make_renditions",
        args=(record.id,),
    )  # fmt: skip
    File.update(rendition_job_id=job.id).where(File.id == record.id).execute()
    record.rendition_job_id = job.id
    return job


def get_file(*, viewer: User | None, file_id: int) -> File:
    """Return a file `viewer` may read: an active product's image, their own, or any for admins.

    Raises `NotFound` for a missing file and for someone else's private file alike.
    """
    record, _public = _readable(viewer, file_id)
    return record


def _readable(viewer: User | None, file_id: int) -> tuple[File, bool]:
    """Return the file `viewer` may read and whether everybody may read it.

    A product image is public only while an active product shows it (ids are
    sequential: an inactive product's image must not be reachable by counting);
    otherwise it is private to its owner and admins, like every other file.
    """
    public = (
        File.select()
        .join(Product, on=(Product.image_file_id == File.id))
        .where(
            (File.id == file_id) & File.purpose.in_(PUBLIC_PURPOSES) & (Product.is_active == True)  # noqa: E712 - SQL comparison
        )
        .first()
    )
    if public is not None:
        return public, True
    if viewer is None:
        raise NotFound(f"File {file_id} not found.")
    return get_visible(File, file_id, user=viewer, owner=File.owner), False


@dataclass(frozen=True)
class Content:
    """Which stored bytes answer a download, and how they may be cached."""

    key: str
    content_type: str
    size: int
    filename: str
    public: bool
    is_rendition: bool


def pick_variant(record: File, *, variant: str | None, width: int | None) -> str | None:
    """Name the ready rendition that answers `variant` or `?w=` (None: the original).

    `width` picks the smallest rendition at least that wide, else the original.
    Raises `ValidationFailed` (`unknown_variant`) for a name that is not a rendition.
    """
    if variant is not None and variant not in RENDITIONS:
        raise ValidationFailed(
            f"Unknown variant {variant!r}; one of {', '.join(RENDITIONS)}.",
            error="unknown_variant",
        )
    ready = record.variants or {}
    if variant is not None:
        return variant if variant in ready else None
    if width is None:
        return None
    fitting = [(v["width"], name) for name, v in ready.items() if v["width"] >= width]
    if not fitting or (record.width is not None and min(fitting)[0] >= record.width):
        return None
    return min(fitting)[1]


def content(
    *, viewer: User | None, file_id: int, variant: str | None, width: int | None
) -> Content:
    """Return what to send for a download: a rendition when ready, else the original.

    Raises `NotFound` (also for someone else's file) or `ValidationFailed`.
    """
    record, public = _readable(viewer, file_id)
    name = pick_variant(record, variant=variant, width=width)
    if name is None:
        return Content(record.sha256, record.content_type, record.size, record.filename,
                       public, is_rendition=False)  # fmt: skip
    chosen = record.variants[name]
    stem = record.filename.rsplit(".", 1)[0] or "image"
    return Content(chosen["sha256"], chosen["content_type"], chosen["size"],
                   f"{stem}-{name}.webp", public, is_rendition=True)  # fmt: skip


def open_content(key: str) -> IO[bytes]:
    """Open stored bytes for reading. Raises `NotFound` when the object is gone."""
    try:
        return get_storage().open(key)
    except FileNotFoundError as exc:
        raise NotFound("The file's content is missing.") from exc


def download_url(key: str, *, download: Download) -> str | None:
    """Return a short-lived URL that serves stored bytes from the store itself, if it has one.

    Valid `FILES_DOWNLOAD_URL_TTL_SECONDS`; None for a store without URLs (local
    storage). Only for a reader `content` allowed: the URL is all it takes.
    """
    ttl = int(current_app.config["FILES_DOWNLOAD_URL_TTL_SECONDS"])
    return get_storage().download_url(key, download=download, expires_in=ttl)


def relative_path(key: str) -> str:
    """Return where stored bytes live below the storage root (for `X-Accel-Redirect`)."""
    return storage_relative_path(key)


def delete_file(*, user: User, file_id: int) -> None:
    """Delete a file (owner or admin) and, when no other file shares them, its bytes.

    Raises `NotFound`, or `Conflict` (`file_in_use`) while a product shows it.
    """
    record = get_visible(File, file_id, user=user, owner=File.owner)
    users = [p.id for p in Product.select(Product.id).where(Product.image_file_id == record.id)]
    if users:
        raise Conflict(
            "The file is a product's image; detach it first.",
            error="file_in_use",
            errors={"product_ids": users},
        )
    _delete_records([record])


def _delete_records(records: list[File]) -> None:
    keys = [key for record in records for key in _keys_of(record)]
    with db.atomic():
        File.delete().where(File.id.in_([r.id for r in records])).execute()
    _discard_unreferenced(keys)


def _keys_of(record: File) -> list[str]:
    return [record.sha256, *(v["sha256"] for v in (record.variants or {}).values())]


def _discard_unreferenced(keys: list[str]) -> None:
    storage = get_storage()
    for key in set(keys):
        if not _is_referenced(key):
            storage.delete(key)


def _is_referenced(key: str) -> bool:
    # Variants are content-addressed too: their sha256 appears in the JSON text.
    matches = File.select(File.id).where((File.sha256 == key) | (File.variants.contains(key)))
    return matches.exists()


def claim_for_product(*, actor: User, file_id: int) -> File:
    """Make an image the caller may read a (public) product image.

    Raises `ValidationFailed` (`unknown_file`, `not_an_image`).
    """
    try:
        record = get_visible(File, file_id, user=actor, owner=File.owner)
    except NotFound as exc:
        raise ValidationFailed(
            f"File {file_id} not found.",
            error="unknown_file",
            errors={"image_file_id": ["No such file."]},
        ) from exc
    if record.content_type not in RENDERABLE_TYPES:
        raise ValidationFailed(
            "A product image must be a PNG, JPEG, GIF or WebP image.",
            error="not_an_image",
            errors={"image_file_id": ["Not an image."]},
        )
    if record.purpose != "product_image":
        File.update(purpose="product_image").where(File.id == record.id).execute()
        record.purpose = "product_image"
    return record


def render(*, file_id: int, progress: Callable[[int, int | None, str], None]) -> dict[str, Any]:
    """Make a stored image's renditions and record them; return `{file_id, variants}`.

    Raises `NotFound` if the file is gone, `ValidationFailed` (`invalid_image`,
    `image_too_large`) when the image cannot be decoded; the original stays.
    """
    record = File.get_or_none(File.id == file_id)
    if record is None:
        raise NotFound(f"File {file_id} not found.")
    progress(0, len(RENDITIONS) + 1, "decoding")
    with open_content(record.sha256) as source:
        renditions = make_renditions(source, max_pixels=int(current_app.config["FILES_MAX_PIXELS"]))
    variants: dict[str, dict[str, Any]] = {}
    for done, rendition in enumerate(renditions, start=1):
        stored = get_storage().put(io.BytesIO(rendition.data))
        variants[rendition.name] = {
            "sha256": stored.key, "content_type": RENDITION_TYPE, "size": stored.size,
            "width": rendition.width, "height": rendition.height,
        }  # fmt: skip
        progress(done, len(RENDITIONS) + 1, rendition.name)
    with db.atomic():
        updated = File.update(variants=variants, updated_at=utcnow()).where(File.id == file_id)
        if not updated.execute():
            _discard_unreferenced([v["sha256"] for v in variants.values()])
            raise NotFound(f"File {file_id} not found.")
    progress(len(RENDITIONS) + 1, len(RENDITIONS) + 1, "done")
    return {"file_id": file_id, "variants": sorted(variants)}


def cleanup() -> dict[str, int]:
    """Delete unattached product-image uploads and expired exports; return counts.

    Product-image uploads no product shows after `FILES_ORPHAN_AFTER_HOURS`
    and exports past `expires_at` go, with their bytes.
    """
    config = current_app.config
    moment = utcnow()
    orphan_cutoff = moment - timedelta(hours=int(config["FILES_ORPHAN_AFTER_HOURS"]))
    orphans = list(
        File.select()
        .join(Product, JOIN.LEFT_OUTER, on=(Product.image_file_id == File.id))
        .where(
            File.purpose == "product_image", File.created_at < orphan_cutoff, Product.id.is_null()
        )  # fmt: skip
    )
    expired = list(File.select().where(File.purpose == "export", File.expires_at < moment))
    for batch in (orphans, expired):
        if batch:
            _delete_records(batch)
    leftovers = get_storage().purge_incoming(older_than_seconds=24 * 3600)
    return {"orphans": len(orphans), "expired_exports": len(expired), "incoming_removed": leftovers}


def list_files(*, user: User, page: int, page_size: int) -> tuple[list[File], int]:
    """Return a page of files, newest first: the caller's own, or everyone's for admins."""
    query = File.select()
    if not is_admin(user):
        query = query.where(File.owner == user.id)
    total = query.count()
    return list(query.order_by(File.id.desc()).paginate(page, page_size)), total
