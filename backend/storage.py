"""Where file bytes live: one small interface, a local-filesystem implementation.

Objects are content-addressed: their key is the sha256 of their bytes, so the
same bytes are stored once and a key never names different content. No
user-supplied name ever becomes part of a path. Another backend (say, an
S3-compatible bucket) only has to implement `Storage`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from flask import Flask, current_app

CHUNK = 1024 * 1024
_KEY = re.compile(r"\A[0-9a-f]{64}\Z")


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


def check_key(key: str) -> str:
    """Return `key` if it is a sha256 hex digest. Raises `ValueError` otherwise."""
    if not _KEY.match(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def relative_path(key: str) -> str:
    """Return the object's path below the storage root (`ab/cd/abcd…`)."""
    check_key(key)
    return f"{key[:2]}/{key[2:4]}/{key}"


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

    def put(self, source: Readable, *, max_bytes: int | None = None) -> StoredObject:
        """Stream `source` to a temporary file while hashing, then rename it into place."""
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

    def keys(self) -> Iterator[str]:
        """Yield every stored key (for audits and cleanup)."""
        for path in self.root.glob("??/??/*"):
            if _KEY.match(path.name):
                yield path.name


def init_app(app: Flask) -> None:
    """Give the app its storage (`FILES_DIR` on the local filesystem)."""
    app.extensions["storage"] = LocalStorage(app.config["FILES_DIR"])


def get_storage() -> Storage:
    """Return the current app's storage."""
    storage: Storage = current_app.extensions["storage"]
    return storage
