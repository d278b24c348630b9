"""Catalog jobs."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from backend.services.product_import import import_products as import_csv
from jobs.base import job, progress


@job
def import_products(spool_path: str) -> dict[str, Any]:
    """Import a CSV of products (upsert by sku); the spooled upload is deleted afterwards."""
    path = Path(spool_path)
    try:
        result = import_csv(path=path, progress=progress)
    finally:
        path.unlink(missing_ok=True)
    return asdict(result)
