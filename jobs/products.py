"""Catalog jobs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from backend.services.product_import import run_import
from jobs.base import job, progress


@job
def import_products(input_name: str) -> dict[str, Any]:
    """Import a spooled CSV of products (upsert by sku); its input is deleted once it succeeded."""
    return asdict(run_import(input_name=input_name, progress=progress))
