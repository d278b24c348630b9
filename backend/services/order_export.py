"""Order export: the caller's orders (admins: everyone's, filtered) as a CSV file in storage.

Rows are read in batches by id and written to a temporary file, so memory
stays flat however many orders there are. Cells that a spreadsheet would run
as a formula are escaped.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app

from backend.models import Job, Order, OrderLine, User, utcnow
from backend.services import job_tracking
from backend.services.access import is_admin

BATCH = 500
COLUMNS = [
    "order_id", "created_at", "status", "user_id", "user_email", "product_id", "sku", "name",
    "quantity", "unit_price", "line_total", "order_total", "currency", "note",
]  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportFilter:
    """Which orders an export covers; `user_id` is honoured for admins only."""

    status: str | None = None
    user_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def start_export(*, actor: User, filters: ExportFilter) -> Job:
    """Queue a CSV export of the orders `actor` may see. Raises `redis.RedisError`."""
    return job_tracking.submit(
        owner=actor, kind="orders.export", func="jobs.orders.export_orders",
        args=(actor.id, asdict(filters)),
    )  # fmt: skip


def escape_cell(value: Any) -> str:
    """Return a CSV cell that spreadsheets show as text, never run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _orders(actor: User, filters: ExportFilter) -> Any:
    query = Order.select(Order, User.email).join(User)
    if not is_admin(actor):
        query = query.where(Order.user == actor.id)
    elif filters.user_id is not None:
        query = query.where(Order.user == filters.user_id)
    if filters.status is not None:
        query = query.where(Order.status == filters.status)
    if filters.created_from is not None:
        query = query.where(Order.created_at >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(Order.created_at < filters.created_to)
    return query


def _batches(query: Any) -> Iterator[list[Order]]:
    last_id = 0
    while True:
        batch = list(query.where(Order.id > last_id).order_by(Order.id).limit(BATCH))
        if not batch:
            return
        yield batch
        last_id = batch[-1].id


def _money(amount: Any) -> str:
    return f"{Decimal(amount):.2f}"


def _rows(orders: list[Order]) -> Iterator[list[str]]:
    lines: dict[int, list[OrderLine]] = {}
    for line in OrderLine.select().where(OrderLine.order.in_([o.id for o in orders])):
        lines.setdefault(line.order_id, []).append(line)
    for order in orders:
        for line in sorted(lines.get(order.id, []), key=lambda item: item.id):
            yield [escape_cell(v) for v in (
                order.id, order.created_at.isoformat(), order.status, order.user_id,
                order.user.email, line.product_id, line.sku, line.name, line.quantity,
                _money(line.unit_price), _money(line.line_total), _money(order.total),
                order.currency, order.note,
            )]  # fmt: skip


def write_export(
    *, actor_id: int, filters: ExportFilter, progress: Callable[[int, int | None, str], None]
) -> dict[str, Any]:
    """Write the CSV, store it as an `export` file owned by the actor; return its summary.

    The result is `{file_id, orders, rows}`. The file expires after
    `FILES_EXPORT_TTL_HOURS`.
    """
    from backend.services.files import store_generated

    actor = User.get_by_id(actor_id)
    query = _orders(actor, filters)
    total = query.count()
    progress(0, total, "exporting")
    done = rows = 0
    with tempfile.TemporaryFile(mode="w+b") as spooled:
        text = io.TextIOWrapper(spooled, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for batch in _batches(query):
            for row in _rows(batch):
                writer.writerow(row)
                rows += 1
            done += len(batch)
            progress(done, total, f"{done} of {total} orders")
        text.flush()
        spooled.seek(0)
        ttl = timedelta(hours=int(current_app.config["FILES_EXPORT_TTL_HOURS"]))
        record = store_generated(
            owner=actor, source=spooled, filename=f"orders-{utcnow():%Y%m%d-%H%M%S}.csv",
            content_type="text/csv", purpose="export", expires_at=utcnow() + ttl,
        )  # fmt: skip
        text.detach()
    return {"file_id": record.id, "orders": done, "rows": rows}
