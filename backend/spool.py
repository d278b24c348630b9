"""Spool files: inputs kept for a job (an import's CSV), streamed in, never held whole in memory.

A spooled input lives where every worker finds it: in `SPOOL_DIR` with local
storage (the same machine or a shared volume), under `spool/` in the bucket
with S3 storage (`backend.s3_storage.S3Spool`). Jobs get its name, never a
path. An input stays until its job no longer needs it (an import deletes it
once it succeeded) or it is older than the retry window (`purge`, run by the
cron's reaper).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from flask import current_app

CHUNK = 1024 * 1024
_NAME = re.compile(r"\A[0-9a-f]{32}\.[a-z0-9]{1,8}\Z")
_SUFFIX = re.compile(r"\A\.[a-z0-9]{1,8}\Z")


class Readable(Protocol):
    """Anything with `read(size)` returning bytes (a file, a request body)."""

    def read(self, size: int = -1, /) -> bytes:
        """Return up to `size` bytes; empty at the end."""
        ...


class Spool(Protocol):
    """Where job inputs wait: named, written once, read by a worker, deleted when done."""

    def write(self, source: Readable, *, suffix: str) -> str:
        """Copy `source` to a new input; return its name. Nothing stays when reading fails."""
        ...

    def open(self, name: str) -> IO[bytes]:
        """Open an input for reading. Raises `FileNotFoundError`."""
        ...

    def exists(self, name: str) -> bool:
        """Return whether the input is still there."""
        ...

    def copy(self, name: str) -> str:
        """Copy an input under a new name (its age starts again); return the new name.

        Raises `FileNotFoundError`.
        """
        ...

    def delete(self, name: str) -> None:
        """Delete an input if it exists."""
        ...

    def purge(self, *, older_than_seconds: float) -> int:
        """Delete inputs older than `older_than_seconds`; return how many."""
        ...


def new_name(suffix: str) -> str:
    """Return a fresh input name: 32 random hex digits and `suffix` (`.csv`)."""
    if not _SUFFIX.match(suffix):
        raise ValueError(f"not a spool suffix: {suffix!r}")
    return f"{uuid.uuid4().hex}{suffix}"


def check_name(name: str) -> str:
    """Return the input's name; a path to one (a job queued before names) gives its last part.

    Raises `ValueError` for anything else, so a name never reaches outside the spool.
    """
    base = name.rsplit("/", 1)[-1]
    if not _NAME.match(base):
        raise ValueError(f"not a spool name: {name!r}")
    return base


class LocalSpool:
    """Inputs as files in one folder (`SPOOL_DIR`)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, name: str) -> Path:
        return self.folder / check_name(name)

    def write(self, source: Readable, *, suffix: str) -> str:
        """Copy `source` to a new file in 1 MiB chunks; return its name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = new_name(suffix)
        path = self.folder / name
        try:
            with path.open("wb") as target:
                shutil.copyfileobj(source, target, CHUNK)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return name

    def open(self, name: str) -> IO[bytes]:
        """Open the input's file."""
        return self._path(name).open("rb")

    def exists(self, name: str) -> bool:
        """Return whether the input's file is there."""
        return self._path(name).is_file()

    def copy(self, name: str) -> str:
        """Copy the file to a new name (a new modification time)."""
        source = self._path(name)
        copied = new_name(source.suffix)
        temp = self.folder / f".{copied}.part"
        try:
            shutil.copyfile(source, temp)
            os.replace(temp, self.folder / copied)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return copied

    def delete(self, name: str) -> None:
        """Delete the input's file."""
        self._path(name).unlink(missing_ok=True)

    def purge(self, *, older_than_seconds: float) -> int:
        """Delete files older than the cutoff (inputs and copies a killed process left)."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.folder.iterdir():
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


@dataclass(frozen=True)
class Spooled:
    """A spooled input of the current app, by name (what a job is handed)."""

    name: str

    def open(self, mode: str = "rb") -> IO[bytes]:
        """Open it for reading (`mode` must be "rb": as `Path.open` is called)."""
        if mode != "rb":
            raise ValueError("spooled inputs are read only")
        return get_spool().open(self.name)

    def delete(self) -> None:
        """Delete it (if it is still there)."""
        get_spool().delete(self.name)


def get_spool() -> Spool:
    """Return the current app's spool (set by `backend.stores.init_app`)."""
    found: Spool = current_app.extensions["spool"]
    return found


def spool(stream: Readable, *, suffix: str) -> str:
    """Copy `stream` to a new input of the current app's spool; return its name.

    When reading `stream` fails (a body over its limit, a client gone), nothing
    is kept and the error goes up.
    """
    return get_spool().write(stream, suffix=suffix)


def purge(max_age_seconds: float) -> int:
    """Delete inputs older than `max_age_seconds` (past the retry window); return the count."""
    return get_spool().purge(older_than_seconds=max_age_seconds)
