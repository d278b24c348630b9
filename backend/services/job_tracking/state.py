"""A job's live state in Redis: one hash per job, written together with its event.

While a job runs, its start, progress and end are written here instead of
the database: a forked work horse then never opens a database connection,
which is most of what a short job costs. Each write (one Lua call) merges
the values, marks the job dirty for `sync` and publishes the job's event, so
state and event never disagree. Reads (`overlay`) lay the live state over
rows not yet synced, so clients never see a stale status.

A state refuses every write once it holds a terminal status: whoever ends a
job first (worker, cancel, reaper) is the only one to publish its terminal
event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
import structlog

from backend.events import publish_args, publish_keys, publish_lua
from backend.models import TERMINAL_STATUSES, Job
from backend.redis_store import get_redis

KEY_PREFIX = "jobs:live:"
DIRTY_KEY = "jobs:live:dirty"  # ids whose state is newer than their row
TTL_SECONDS = 86_400  # far longer than any sync takes; rows are the durable history

Event = tuple[str, str, dict[str, Any]]  # channel, type, data
Write = tuple[str, dict[str, Any], Event | None]  # job id, values, event

log = structlog.get_logger(__name__)

# Writes field/value pairs (from ARGV[7]) unless the state is already terminal,
# and then publishes the event in ARGV[3..6] when its keys are given; returns
# 1, or 0 when refused.
_WRITE = (
    """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('SADD', KEYS[2], ARGV[1])
if #KEYS > 2 then
"""
    + publish_lua(3, 3)
    + """
end
return 1
"""
)
_NO_EVENT = ["", "", "", ""]

_TIMES = ("started_at", "finished_at", "updated_at", "cancel_requested")
_INTS = ("progress_done",)
_OPTIONAL_INTS = ("progress_total",)
_OPTIONAL_TEXTS = ("error",)


def key(job_id: str) -> str:
    """The Redis hash holding `job_id`'s live state."""
    return f"{KEY_PREFIX}{job_id}"


def write(job_id: str, values: dict[str, Any], event: Event | None = None) -> bool:
    """Merge `values` (Job field names) into the job's live state and publish `event`.

    In one step: the state changes, the job is marked dirty for `sync`, and
    `event` (channel, type, data), when given, goes out. Returns False,
    writing and publishing nothing, when the job had already ended.
    Raises `redis.RedisError` when Redis is unreachable.
    """
    return write_many([(job_id, values, event)])[0]


def write_many(writes: list[Write]) -> list[bool]:
    """`write` for several jobs in one round trip; each result says whether it was written."""
    client = get_redis()
    script = client.register_script(_WRITE)
    if len(writes) == 1:  # a pipeline would first ask whether the script is loaded
        return [bool(script(*_script_input(*writes[0])))]
    pipe = client.pipeline(transaction=False)
    for job_id, values, event in writes:
        script(*_script_input(job_id, values, event), client=pipe)
    return [bool(written) for written in pipe.execute()]


def _script_input(
    job_id: str, values: dict[str, Any], event: Event | None
) -> tuple[list[str], list[Any]]:
    pairs: list[str] = []
    for name, value in values.items():
        pairs += [name, _encode(name, value)]
    keys = [key(job_id), DIRTY_KEY]
    args: list[Any] = [job_id, TTL_SECONDS]
    if event is None:
        args += _NO_EVENT
    else:
        keys += publish_keys(event[0])
        args += publish_args(event[1], event[2])
    return keys, [*args, *pairs]


def read(job_id: str) -> dict[str, Any]:
    """Return the job's live state as Job field values (empty when it has none)."""
    return read_many([job_id])[0]


def read_many(job_ids: list[str]) -> list[dict[str, Any]]:
    """Return each job's live state (empty when it has none), in order."""
    pipe = get_redis().pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hgetall(key(job_id))
    return [decode(state) for state in pipe.execute()]


def overlay(records: Iterable[Job]) -> None:
    """Lay live state over rows that have not caught up yet (in memory only).

    Rows that already ended are final and left alone. When Redis is
    unreachable the rows are shown as stored: a read never fails for it.
    """
    pending = [record for record in records if record.status not in TERMINAL_STATUSES]
    if not pending:
        return
    try:
        states = read_many([record.id for record in pending])
    except redis.RedisError:
        log.warning("job_state_unavailable")
        return
    for record, state in zip(pending, states, strict=True):
        for name, value in state.items():
            setattr(record, name, value)


def decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """Turn a stored hash back into Job field values."""
    state: dict[str, Any] = {}
    for raw_name, raw_value in raw.items():
        name, text = as_text(raw_name), as_text(raw_value)
        if name in _TIMES:
            state[name] = datetime.fromisoformat(text) if text else None
        elif name in _INTS:
            state[name] = int(text)
        elif name in _OPTIONAL_INTS:
            state[name] = int(text) if text else None
        elif name in _OPTIONAL_TEXTS:
            state[name] = text or None
        elif name == "result":
            state[name] = json.loads(text)
        else:
            state[name] = text
    return state


def _encode(name: str, value: Any) -> str:
    if name == "result":
        return json.dumps(value, separators=(",", ":"), default=str)
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def as_text(value: bytes | str) -> str:
    """Text of a value redis-py returned as bytes (or already as text)."""
    return value.decode() if isinstance(value, bytes) else value
