"""Where file bytes live: one small interface, a local-filesystem implementation.

Objects are content-addressed: their key is the sha256 of their bytes, so the
same bytes are stored once and a key never names different content. No
user-supplied name ever becomes part of a path. `backend.s3_storage` is the
other implementation (an S3-compatible bucket); `backend.stores` picks one
from `FILES_STORAGE_URL`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar, cast

from flask import Request, current_app

CHUNK = 1024 * 1024
RECEIVES_INTO_STORAGE = "receives_uploads_into_storage"  # the mark on a view function
_KEY = re.compile(r"\A[0-9a-f]{64}\Z")


class StorageUnavailable(OSError):
    """The store cannot be reached (or answers with a server error); try again later."""


class TooLarge(Exception):
    """The source had more bytes than allowed; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredObject:
    """What `Storage.put` stored: its key (the sha256) and size in bytes."""

    key: str
    size: int

    @property
    def sha256(self) -> str:
        """The hex sha256 of the bytes (the key itself)."""
        return self.key


class Readable(Protocol):
    """Anything with `read(size)` returning bytes (a file, an upload stream)."""

    def read(self, size: int = -1, /) -> bytes:
        """Return up to `size` bytes; empty at the end."""
        ...


class Storage(Protocol):
    """The operations files need from a byte store."""

    def put(self, source: Readable, *, max_bytes: int | None = None) -> StoredObject:
        """Store everything `source` yields, hashing it on the way; return its key and size.

        Raises `TooLarge` (and stores nothing) past `max_bytes`.
        """
        ...

    def open(self, key: str) -> IO[bytes]:
        """Open the object for reading. Raises `FileNotFoundError`."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object if it exists."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether the object exists."""
        ...

    def size(self, key: str) -> int:
        """Return the object's size in bytes. Raises `FileNotFoundError`."""
        ...

    def local_path(self, key: str) -> Path | None:
        """Return the object's path on this machine, if it has one (for sendfile)."""
        ...

    def keys(self) -> Iterator[str]:
        """Yield every stored key (for audits, cleanup and tests)."""
        ...

    def purge_incoming(self, *, older_than_seconds: float) -> int:
        """Delete what writes cut short (a killed process) left behind; return how many."""
        ...

    def download_url(self, key: str, *, download: Download, expires_in: int) -> str | None:
        """Return a short-lived URL that serves the object by itself, or None if there is none.

        Callers hand it out only after checking that the reader may have the bytes.
        """
        ...


@dataclass(frozen=True)
class Download:
    """How a download is to be presented: the headers a signed URL makes its server send."""

    content_type: str
    content_disposition: str
    cache_control: str


def check_key(key: str) -> str:
    """Return `key` if it is a sha256 hex digest. Raises `ValueError` otherwise."""
    if not _KEY.match(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def relative_path(key: str) -> str:
    """Return the object's path below the storage root (`ab/cd/abcd…`)."""
    check_key(key)
    return f"{key[:2]}/{key[2:4]}/{key}"


class Incoming:
    """A file being received (an upload part), hashed as it is written.

    Werkzeug writes the request's file part into it; `LocalStorage.put`
    then renames it into place instead of copying it. Closed without being
    adopted (a refused or failed upload), it deletes itself.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix="upload-")
        self.path = Path(name)
        self.folder = folder
        self._file = os.fdopen(fd, "w+b")
        self._digest = hashlib.sha256()
        self.size = 0
        self.adopted = False

    def write(self, data: bytes) -> int:
        """Write and hash `data`."""
        self._digest.update(data)
        self.size += len(data)
        return self._file.write(data)

    def read(self, size: int = -1, /) -> bytes:
        """Read back what was written (after `seek`)."""
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the read position."""
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        """Return the position."""
        return self._file.tell()

    def flush(self) -> None:
        """Flush buffered writes."""
        self._file.flush()

    def readable(self) -> bool:
        """Incoming files can be read back."""
        return True

    def writable(self) -> bool:
        """Incoming files are written by the form parser."""
        return True

    def seekable(self) -> bool:
        """Incoming files can seek."""
        return True

    def hexdigest(self) -> str:
        """Return the sha256 of everything written."""
        return self._digest.hexdigest()

    def close(self) -> None:
        """Close the file; delete it unless it was adopted into storage."""
        self._file.close()
        if not self.adopted:
            self.path.unlink(missing_ok=True)


class LocalStorage:
    """Objects as files under one folder: `ab/cd/abcd…` by sha256.

    Writes go to a temporary file in the same folder tree and are renamed into
    place, so a reader never sees a partial object and a failed write leaves
    nothing behind.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._incoming = self.root / "incoming"

    def path_for(self, key: str) -> Path:
        """Return where the object with `key` lives (whether or not it exists)."""
        return self.root / relative_path(key)

    def incoming(self) -> Incoming:
        """Return a new file to receive an upload into (see `put`)."""
        return Incoming(self._incoming)

    def put(self, source: Readable, *, max_bytes: int | None = None) -> StoredObject:
        """Stream `source` to a temporary file while hashing, then rename it into place.

        An `Incoming` file of this storage is renamed into place as it is, with
        no second copy.
        """
        if isinstance(source, Incoming) and source.folder == self._incoming:
            return self._adopt(source, max_bytes=max_bytes)
        self._incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, temp_name = tempfile.mkstemp(dir=self._incoming, prefix="put-")
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as target:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(max_bytes)
                    digest.update(chunk)
                    target.write(chunk)
            key = digest.hexdigest()
            final = self.path_for(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size=size)

    def _adopt(self, source: Incoming, *, max_bytes: int | None) -> StoredObject:
        if max_bytes is not None and source.size > max_bytes:
            raise TooLarge(max_bytes)
        source.flush()
        key = source.hexdigest()
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source.path, final)
        source.adopted = True
        return StoredObject(key=key, size=source.size)

    def open(self, key: str) -> IO[bytes]:
        """Open the object for reading. Raises `FileNotFoundError`."""
        return self.path_for(key).open("rb")

    def delete(self, key: str) -> None:
        """Delete the object if it exists."""
        self.path_for(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """Return whether the object exists."""
        return self.path_for(key).is_file()

    def size(self, key: str) -> int:
        """Return the object's size in bytes. Raises `FileNotFoundError`."""
        return self.path_for(key).stat().st_size

    def local_path(self, key: str) -> Path | None:
        """Return the object's path."""
        return self.path_for(key)

    def purge_incoming(self, *, older_than_seconds: float) -> int:
        """Delete temporary files left by killed processes; return how many."""
        if not self._incoming.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self._incoming.iterdir():
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def keys(self) -> Iterator[str]:
        """Yield every stored key (for audits and cleanup)."""
        for path in self.root.glob("??/??/*"):
            if _KEY.match(path.name):
                yield path.name

    def download_url(self, key: str, *, download: Download, expires_in: int) -> str | None:
        """A folder has no URL of its own: downloads go through the app."""
        return None


View = TypeVar("View", bound=Callable[..., object])


def receives_uploads(view: View) -> View:
    """Mark `view` so that its requests' file parts are written straight into storage.

    Such parts are received into the storage's own temporary folder, hashed
    on arrival and renamed into place by `LocalStorage.put`: one write. The
    mark is an attribute of the view function (copied up by every
    `functools.wraps` above it), so it stays when the view or its blueprint is
    renamed.
    """
    setattr(view, RECEIVES_INTO_STORAGE, True)
    return view


class UploadRequest(Request):
    """Flask's request; file parts sent to a `receives_uploads` view go straight into storage."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        storage = current_app.extensions.get("storage")
        view = current_app.view_functions.get(self.endpoint or "")
        if getattr(view, RECEIVES_INTO_STORAGE, False) and isinstance(storage, LocalStorage):
            incoming = storage.incoming()
            self._incoming.append(incoming)
            return cast(IO[bytes], incoming)
        return super()._get_file_stream(
            total_content_length, content_type, filename, content_length
        )

    @functools.cached_property
    def _incoming(self) -> list[Incoming]:
        return []

    def close(self) -> None:
        """Close the request's files; delete received parts no one adopted.

        Also those of an upload cut short (say, 413 while streaming), which
        never reached `request.files`.
        """
        super().close()
        for incoming in self._incoming:
            incoming.close()


def get_storage() -> Storage:
    """Return the current app's storage."""
    storage: Storage = current_app.extensions["storage"]
    return storage
