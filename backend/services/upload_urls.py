"""Upload URLs: signed, short-lived, single-use URLs that take a file's raw bytes with no token.

Flet's `FilePicker.upload` PUTs a file's bytes to a URL with no headers at all (no
`Authorization`, no `Content-Type`). So the URL itself is the credential: its token is
signed (itsdangerous, keyed from `SECRET_KEY`, one salt per kind of URL) and carries
what it allows: the user and the device session it was made in, the kind (`file` or
`import`), the file's purpose, name and declared type, the byte limit and the expiry
(`UPLOAD_URL_TTL_SECONDS`, at most 15 minutes).

Single use: each URL's id is also a `OneTimeToken` row (only its sha256 is stored),
claimed by one conditional `UPDATE` when a PUT starts (of two racing PUTs one wins, the
other gets 409). A PUT that fails (413, 415, 422, a client gone, a dependency down)
gives the claim back, so the same URL can be tried again until it expires; one that
succeeds keeps it spent. The rows are purged with the other one-time tokens.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from backend.errors import Conflict, DomainError, Forbidden, Gone, PayloadTooLarge
from backend.models import File, Job, OneTimeToken, User, utcnow
from backend.services import files, product_import, sessions
from backend.services.access import require_role
from backend.services.media import safe_filename
from backend.spool import spool

FILE = "file"
IMPORT = "import"
TOKEN_PURPOSES = {FILE: "upload_url", IMPORT: "import_upload_url"}  # OneTimeToken.purpose
LIMITS = {FILE: "FILES_MAX_BYTES", IMPORT: "IMPORT_MAX_BYTES"}
SALT = "flet-backend.upload-url.{}"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class UploadUrl:
    """A URL just made: its token (the last part of the URL), expiry and byte limit."""

    token: str
    expires_at: datetime
    max_bytes: int
    method: str = "PUT"


@dataclass(frozen=True)
class Grant:
    """What a verified upload URL allows its bearer to send, and as whom."""

    kind: str
    token_id: str
    user: User
    purpose: str
    filename: str
    content_type: str | None
    max_bytes: int


def _serializer(kind: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT.format(kind))


def _digest(token_id: str) -> str:
    return hashlib.sha256(token_id.encode()).hexdigest()


def issue(
    *,
    user: User,
    session_id: int,
    kind: str,
    size: int | None = None,
    filename: str | None = None,
    content_type: str | None = None,
    purpose: str = "upload",
) -> UploadUrl:
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
    expires = int(time.time()) + int(current_app.config["UPLOAD_URL_TTL_SECONDS"])
    expires_at = datetime.fromtimestamp(expires, UTC)
    max_bytes = limit if size is None else size
    OneTimeToken.create(
        user=user, purpose=TOKEN_PURPOSES[kind], token_hash=_digest(token_id),
        expires_at=expires_at,
    )  # fmt: skip
    claims = {
        "j": token_id, "u": user.id, "s": session_id, "p": purpose,
        "n": safe_filename(filename), "t": content_type, "m": max_bytes, "e": expires,
    }  # fmt: skip
    return UploadUrl(_serializer(kind).dumps(claims), expires_at, max_bytes)


def verify(*, token: str, kind: str) -> Grant:
    """Check an upload URL's token before its body is read; return what it allows.

    Raises `Forbidden` (`invalid_upload_url`: tampered, made for another kind
    of upload, or unknown; or the account is deactivated or the sign-in it was
    made in has ended), `Gone` (`expired`), `Conflict` (`upload_url_used`).
    """
    try:
        claims: dict[str, Any] = _serializer(kind).loads(token)
    except BadSignature as exc:
        raise Forbidden("This upload URL is not valid.", error="invalid_upload_url") from exc
    if time.time() >= claims["e"]:
        raise Gone("This upload URL has expired; ask for a new one.", error="expired")
    if (refused := _refusal(_digest(claims["j"]))) is not None:
        raise refused
    user = User.get_or_none(User.id == claims["u"])
    if user is None or not user.is_active:
        raise Forbidden("The account this upload URL was made for is deactivated.")
    if not sessions.is_active(claims["s"], note_seen=False):
        raise Forbidden("The sign-in this upload URL was made in has ended.")
    return Grant(kind=kind, token_id=claims["j"], user=user, purpose=claims["p"],
                 filename=claims["n"], content_type=claims["t"], max_bytes=claims["m"])  # fmt: skip


def _refusal(digest: str) -> DomainError | None:
    """Say why the URL with this id cannot be claimed now, if it cannot."""
    record = OneTimeToken.get_or_none(OneTimeToken.token_hash == digest)
    if record is None:
        return Forbidden("This upload URL is not valid.", error="invalid_upload_url")
    if record.used_at is not None:
        return Conflict(
            "This upload URL was already used (or an upload to it is under way).",
            error="upload_url_used",
        )
    if record.expires_at <= utcnow():
        return Gone("This upload URL has expired; ask for a new one.", error="expired")
    return None


@contextlib.contextmanager
def _claimed(grant: Grant) -> Iterator[None]:
    """Spend the URL for the block; give it back if the block fails."""
    digest = _digest(grant.token_id)
    now = utcnow()
    unspent = (
        (OneTimeToken.token_hash == digest)
        & OneTimeToken.used_at.is_null()
        & (OneTimeToken.expires_at > now)
    )
    if OneTimeToken.update(used_at=now, updated_at=now).where(unspent).execute() != 1:
        # Lost a race since `verify` (another upload, the expiry): say which.
        raise _refusal(digest) or Conflict(
            "This upload URL was just used.", error="upload_url_used"
        )
    try:
        yield
    except BaseException:
        # Give the claim back (if the database is down too, the URL stays spent).
        ours = (OneTimeToken.token_hash == digest) & (OneTimeToken.used_at == now)
        OneTimeToken.update(used_at=None, updated_at=utcnow()).where(ours).execute()
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


def receive_file(*, grant: Grant, stream: IO[bytes]) -> File:
    """Store the body sent to a file upload URL exactly as `POST /files` stores an upload.

    Spends the URL when the file is stored. Raises what `files.upload` raises
    (`PayloadTooLarge` past the URL's limit), or `Conflict` (`upload_url_used`)
    when another upload to the URL won the race.
    """
    with _claimed(grant):
        return files.upload(
            owner=grant.user, stream=stream, filename=grant.filename,
            declared_type=grant.content_type, purpose=grant.purpose, max_bytes=grant.max_bytes,
        )  # fmt: skip


def receive_import(*, grant: Grant, stream: IO[bytes]) -> Job:
    """Spool the CSV sent to an import upload URL and start the import (as `POST /products/import`).

    Spends the URL when the job is queued. Raises `PayloadTooLarge`, what
    `product_import.start_import` raises (`invalid_csv`, `Forbidden`), or `Conflict`.
    """
    with _claimed(grant):
        path = spool(_Bounded(stream, grant.max_bytes), suffix=".csv")
        return product_import.start_import(actor=grant.user, csv_path=path)
