"""Spool files: uploads copied to disk for a worker to read, never held whole in memory."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import IO

from flask import current_app

CHUNK = 1024 * 1024


def spool_dir() -> Path:
    """Return the spool folder (`SPOOL_DIR`), creating it if needed."""
    folder = Path(current_app.config["SPOOL_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def spool(stream: IO[bytes], *, suffix: str) -> Path:
    """Copy `stream` to a new spool file in 1 MiB chunks; return its path."""
    path = spool_dir() / f"{uuid.uuid4().hex}{suffix}"
    with path.open("wb") as target:
        shutil.copyfileobj(stream, target, CHUNK)
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
