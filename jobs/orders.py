"""Order jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backend.services.order_export import ExportFilter, write_export
from jobs.base import job, progress


@job
def export_orders(actor_id: int, filters: dict[str, Any]) -> dict[str, Any]:
    """Write the orders the actor may see to a CSV file; the result holds its `file_id`."""
    dates = {
        key: datetime.fromisoformat(value) if isinstance(value, str) else value
        for key, value in filters.items()
        if key in ("created_from", "created_to")
    }
    return write_export(
        actor_id=actor_id, filters=ExportFilter(**{**filters, **dates}), progress=progress
    )
