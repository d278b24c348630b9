"""Spool files: uploads copied to disk for a worker to read, never held whole in memory."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Protocol

from flask import current_app

CHUNK = 1024 * 1024


class Readable(Protocol):
    """Anything with `read(size)` returning bytes (a file, a request body)."""

    def read(self, size: int = -1, /) -> bytes:
        """Return up to `size` bytes; empty at the end."""
        ...


def spool_dir() -> Path:
    """Return the spool folder (`SPOOL_DIR`), creating it if needed."""
    folder = Path(current_app.config["SPOOL_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def spool(stream: Readable, *, suffix: str) -> Path:
    """Copy `stream` to a new spool file in 1 MiB chunks; return its path.

    When reading `stream` fails (a body over its limit, a client gone), the
    partial file is deleted and the error goes up.
    """
    path = spool_dir() / f"{uuid.uuid4().hex}{suffix}"
    try:
        with path.open("wb") as target:
            shutil.copyfileobj(stream, target, CHUNK)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def purge(max_age_seconds: float) -> int:
    """Delete spool files older than `max_age_seconds` (left by killed jobs); return the count."""
    cutoff = time.time() - max_age_seconds
    removed = 0
    for path in spool_dir().iterdir():
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
