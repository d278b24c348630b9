"""Upload URLs: signed, short-lived, single-use URLs that take a file's raw bytes with no token.

Flet's `FilePicker.upload` PUTs a file's bytes to a URL with no headers at all (no
`Authorization`, no `Content-Type`), so the URL itself is the credential. It ends in a
token: a random id signed with itsdangerous (keyed from `SECRET_KEY`, one salt per kind
of URL, so a file URL is no import URL), short enough for any URL. The id's sha256 finds
an `UploadUrl` row saying what the URL allows: whose file (and the device session it
was made in), the purpose, filename, declared type, byte limit and expiry
(`UPLOAD_URL_TTL_SECONDS`, at most 15 minutes).

Single use: a PUT claims the row with one conditional `UPDATE ... WHERE used_at IS NULL`
before it reads the body (of two racing PUTs one wins, the other gets 409). A PUT that
fails (413, 415, 422, a client gone, a dependency down) gives the claim back, so the URL
can be tried again until it expires; one that succeeds keeps it spent. Rows are purged
a while after they expire (`purge_expired`, with the other one-time tokens).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from backend.errors import Conflict, DomainError, Forbidden, Gone, PayloadTooLarge
from backend.models import File, Job, UploadUrl, User, utcnow
from backend.services import files, product_import, sessions
from backend.services.access import get_visible, require_role
from backend.services.media import safe_filename
from backend.services.tokens import digest
from backend.spool import spool

FILE = "file"
IMPORT = "import"
LIMITS = {FILE: "FILES_MAX_BYTES", IMPORT: "IMPORT_MAX_BYTES"}
SALT = "flet-backend.upload-url.{}"
CHUNK = 1024 * 1024
TOKEN_MAX_CHARS = 128  # a signed 22-character id is about 50


@dataclass(frozen=True)
class MadeUrl:
    """A URL just made: its id, token (the last part of the URL), expiry and byte limit."""

    upload_id: int
    token: str
    expires_at: datetime
    max_bytes: int
    method: str = "PUT"


@dataclass(frozen=True)
class Outcome:
    """What became of an upload URL: `pending`, `completed` (with its file or job), `expired`."""

    upload_id: int
    status: str
    expires_at: datetime
    file: File | None
    job: Job | None


def _serializer(kind: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT.format(kind))


def issue(
    *,
    user: User,
    session_id: int,
    kind: str,
    size: int | None = None,
    filename: str | None = None,
    content_type: str | None = None,
    purpose: str = "upload",
) -> MadeUrl:
    """Make an upload URL's token for `user`, bound to what it may receive.

    The limit is `size` when given, else `FILES_MAX_BYTES` (`IMPORT_MAX_BYTES`
    for an import). Raises `PayloadTooLarge` when `size` is over that limit,
    `Forbidden` for an import or a `product_image` when `user` is not an admin.
    """
    if kind == IMPORT or purpose == "product_image":
        require_role(user, "admin")
    limit = int(current_app.config[LIMITS[kind]])
    if size is not None and size > limit:
        message = f"Files may be at most {limit} bytes."
        raise PayloadTooLarge(message, errors={"json": {"size": [message]}})
    token_id = secrets.token_urlsafe(16)
    now = utcnow().replace(microsecond=0)
    record = UploadUrl.create(
        owner=user, session_id=session_id, kind=kind, token_hash=digest(token_id),
        purpose=purpose, filename=safe_filename(filename, fallback="products.csv"
                                                if kind == IMPORT else "file"),
        content_type=content_type, max_bytes=limit if size is None else size,
        expires_at=now + timedelta(seconds=int(current_app.config["UPLOAD_URL_TTL_SECONDS"])),
    )  # fmt: skip
    token = _serializer(kind).dumps(token_id)
    return MadeUrl(record.id, token, record.expires_at, record.max_bytes)


def verify(*, token: str, kind: str) -> UploadUrl:
    """Check an upload URL's token before its body is read; return what it allows.

    Raises `Forbidden` (`invalid_upload_url`: tampered, made for another kind
    of upload, or unknown; or the account is deactivated or the sign-in it was
    made in has ended), `Gone` (`expired`), `Conflict` (`upload_url_used`).
    """
    try:
        token_id = _serializer(kind).loads(token)
    except BadSignature as exc:
        raise _invalid() from exc
    record = UploadUrl.get_or_none(UploadUrl.token_hash == digest(str(token_id)))
    if record is None:
        raise _invalid()
    if (refused := _refusal(record)) is not None:
        raise refused
    if not record.owner.is_active:
        raise Forbidden("The account this upload URL was made for is deactivated.")
    if not sessions.is_active(record.session_id, note_seen=False):
        raise Forbidden("The sign-in this upload URL was made in has ended.")
    return record


def _invalid() -> Forbidden:
    return Forbidden("This upload URL is not valid.", error="invalid_upload_url")


def _refusal(record: UploadUrl | None) -> DomainError | None:
    """Say why this URL cannot be claimed now, if it cannot."""
    if record is None:
        return _invalid()
    if record.expires_at <= utcnow():
        return Gone("This upload URL has expired; ask for a new one.", error="expired")
    if record.used_at is not None:
        return Conflict(
            "This upload URL was already used (or an upload to it is under way).",
            error="upload_url_used",
        )
    return None


@contextlib.contextmanager
def _claimed(grant: UploadUrl) -> Iterator[None]:
    """Spend the URL for the block; give it back if the block fails."""
    now = utcnow()
    unspent = (
        (UploadUrl.id == grant.id) & UploadUrl.used_at.is_null() & (UploadUrl.expires_at > now)
    )
    if UploadUrl.update(used_at=now, updated_at=now).where(unspent).execute() != 1:
        # Lost a race since `verify` (another upload, the expiry): say which.
        raise _refusal(UploadUrl.get_or_none(UploadUrl.id == grant.id)) or Conflict(
            "This upload URL was just used.", error="upload_url_used"
        )
    try:
        yield
    except BaseException:
        # Give the claim back (if the database is down too, the URL stays spent).
        ours = (UploadUrl.id == grant.id) & (UploadUrl.used_at == now)
        UploadUrl.update(used_at=None, updated_at=utcnow()).where(ours).execute()
        raise


class _Bounded:
    """A stream that raises `PayloadTooLarge` once more than `limit` bytes came through it."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._stream.read(CHUNK if size < 0 else size)
        self._read += len(chunk)
        if self._read > self._limit:
            raise PayloadTooLarge(f"This upload URL takes at most {self._limit} bytes.")
        return chunk


def receive_file(*, grant: UploadUrl, stream: IO[bytes]) -> File:
    """Store the body sent to a file upload URL exactly as `POST /files` stores an upload.

    Spends the URL when the file is stored. Raises what `files.upload` raises
    (`PayloadTooLarge` past the URL's limit), or `Conflict` (`upload_url_used`)
    / `Gone` when another upload to the URL, or its expiry, came first.
    """
    with _claimed(grant):
        record = files.upload(
            owner=grant.owner, stream=stream, filename=grant.filename,
            declared_type=grant.content_type, purpose=grant.purpose, max_bytes=grant.max_bytes,
        )  # fmt: skip
    _completed(grant, file=record.id)
    return record


def receive_import(*, grant: UploadUrl, stream: IO[bytes]) -> Job:
    """Spool the CSV sent to an import upload URL and start the import (as `POST /products/import`).

    Spends the URL when the job is queued. Raises `PayloadTooLarge`, what
    `product_import.start_import` raises (`invalid_csv`, `Forbidden`), or `Conflict`.
    """
    require_role(grant.owner, "admin")  # before anything is spooled (demoted meanwhile?)
    with _claimed(grant):
        name = spool(_Bounded(stream, grant.max_bytes), suffix=".csv")
        job = product_import.start_import(actor=grant.owner, input_name=name)
    _completed(grant, job_id=job.id)
    return job


def _completed(grant: UploadUrl, **made: Any) -> None:
    now = utcnow()
    UploadUrl.update(completed_at=now, updated_at=now, **made).where(
        UploadUrl.id == grant.id
    ).execute()


def outcome(*, user: User, upload_id: int) -> Outcome:
    """Say what became of one of `user`'s upload URLs (admins: anyone's).

    Flet's `FilePicker.upload` reports progress, not the server's answer: this is
    how an app learns the new file (or import job). Raises `NotFound`.
    """
    record = get_visible(UploadUrl, upload_id, user=user, owner=UploadUrl.owner)
    job = Job.get_or_none(Job.id == record.job_id) if record.job_id else None
    expired = record.expires_at <= utcnow()
    status = "completed" if record.completed_at else "expired" if expired else "pending"
    return Outcome(record.id, status, record.expires_at, record.file, job)


def purge_expired(*, older_than: timedelta) -> int:
    """Delete upload URLs that expired longer ago than `older_than`; return how many."""
    cutoff = utcnow() - older_than
    return int(UploadUrl.delete().where(UploadUrl.expires_at < cutoff).execute())
