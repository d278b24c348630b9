"""Rows follow live state: dirty live states copied into their `Job` rows in batches.

The worker's long-lived process syncs between jobs (`WorkerRecorder`); the
API and the reaper sync the jobs they end at once; the reaper also syncs
everything dirty before it looks for abandoned jobs.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from backend.db import db
from backend.models import TERMINAL_STATUSES, Job
from backend.redis_store import get_redis
from backend.services.job_tracking.state import DIRTY_KEY, as_text, read_many

SYNC_BATCH = 500


def sync_rows(job_ids: list[str] | None = None) -> int:
    """Copy live states into their `Job` rows: the given jobs, or every dirty one.

    Rows that already ended are never changed. Returns how many states were
    copied. If the database write fails the jobs stay dirty for the next
    sync, and the error is raised.
    """
    client = get_redis()
    copied = 0
    while True:
        if job_ids is None:
            batch = [as_text(raw) for raw in cast(list[bytes], client.spop(DIRTY_KEY, SYNC_BATCH))]
        else:
            batch, job_ids = job_ids[:SYNC_BATCH], job_ids[SYNC_BATCH:]
            if batch:
                client.srem(DIRTY_KEY, *batch)
        if not batch:
            return copied
        copied += _copy(client, batch)


def _copy(client: redis.Redis, batch: list[str]) -> int:
    states = read_many(batch)
    # One prepared UPDATE per set of fields, run for many rows: building a
    # peewee query per row would cost more than the database's own work.
    rows_by_fields: dict[tuple[str, ...], list[list[Any]]] = {}
    for job_id, state in zip(batch, states, strict=True):
        if state:
            fields = tuple(sorted(state))
            row = [Job._meta.fields[name].db_value(state[name]) for name in fields]
            rows_by_fields.setdefault(fields, []).append([*row, job_id, *TERMINAL_STATUSES])
    try:
        with db.atomic():
            for fields, rows in rows_by_fields.items():
                db.cursor().executemany(_update_sql(fields), rows)
    except Exception:
        client.sadd(DIRTY_KEY, *batch)
        raise
    return sum(len(rows) for rows in rows_by_fields.values())


def _update_sql(fields: tuple[str, ...]) -> str:
    """`UPDATE job SET <fields> WHERE id = ? AND status NOT IN (<terminal>)`, placeholders."""
    param = db.param

    def quoted(name: str) -> str:
        return f"{db.quote[0]}{name}{db.quote[1]}"

    meta = Job._meta
    assignments = ", ".join(f"{quoted(meta.fields[name].column_name)} = {param}" for name in fields)
    terminal = ", ".join(param for _ in TERMINAL_STATUSES)
    return (
        f"UPDATE {quoted(meta.table_name)} SET {assignments} "  # noqa: S608 - names from the model, values bound
        f"WHERE {quoted(meta.fields['id'].column_name)} = {param} "
        f"AND {quoted(meta.fields['status'].column_name)} NOT IN ({terminal})"
    )
