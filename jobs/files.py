"""File jobs: image renditions and storage cleanup."""

from __future__ import annotations

from typing import Any

from backend.services import files
from jobs.base import job, progress


@job
def make_renditions(file_id: int) -> dict[str, Any]:
    """Make the thumb, mobile and desktop WebP renditions of an uploaded image."""
    return files.render(file_id=file_id, progress=progress)


@job
def cleanup_files() -> dict[str, int]:
    """Delete never-attached product-image uploads and expired exports, with their bytes."""
    return files.cleanup()
