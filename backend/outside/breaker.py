"""A circuit breaker per outside service, shared by every process through Redis.

Closed: calls go out; each failure (no answer, a timeout, a 5xx) counts, and
any answer resets the count. After `PROVIDER_BREAKER_FAILURES` failures in a
row the breaker opens for `PROVIDER_BREAKER_COOLDOWN_SECONDS`: every process,
web or worker, then refuses calls at once instead of waiting for a timeout.
When the cool-down is over it is half-open: one caller, in one process, gets
to probe; an answer closes the breaker, a failure opens it for another
cool-down. A probe that never reports (its process died) is given up after
`probe_seconds` and the next caller probes.

The state is one Redis hash per service, changed only by Lua scripts that read
the clock of the Redis server (so machines with skewed clocks agree). While
Redis is unreachable the breaker lets calls through: losing the breaker must
not take the outside service away too.

Why not pybreaker: it holds a process-wide lock for the whole guarded call
(one gevent worker would make its calls one at a time), and its Redis storage
reads and writes the count in separate steps, so processes race on it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import cast

import redis
import structlog
from flask import current_app

from backend.redis_store import get_redis

log = structlog.get_logger(__name__)

KEY_PREFIX = "breaker:"
SERVICES_KEY = "breaker:services"  # every service whose breaker has ever counted a failure

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# -> {state, number}: 0 closed (number: failures so far), 1 open (ms until a
# probe may go), 2 half-open and this caller is the probe.
_CHECK = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probe_until')
local failures = tonumber(h[1]) or 0
local open_until = tonumber(h[2]) or 0
local probe_until = tonumber(h[3]) or 0
if open_until == 0 then return {0, failures} end
if now < open_until then return {1, open_until - now} end
if now < probe_until then return {1, probe_until - now} end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]))
return {2, 0}
"""
)

# ARGV: threshold, cool-down ms, whether the caller was the probe, key ttl ms.
# -> 1 when this failure opened the breaker.
_FAILURE = (
    _NOW
    + """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until')) or 0
local opened = 0
if ARGV[3] == '1' or (failures >= tonumber(ARGV[1]) and open_until <= now) then
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]), 'probe_until', 0,
             'failures', 0)
  opened = 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
return opened
"""
)

# A success closes the breaker when the caller was the probe; otherwise it only
# resets the count, and never closes a breaker another process opened meanwhile.
_SUCCESS = """
if ARGV[1] == '1' then return redis.call('DEL', KEYS[1]) end
if (tonumber(redis.call('HGET', KEYS[1], 'open_until')) or 0) == 0 then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class State(enum.IntEnum):
    """A breaker's state as `/metrics` shows it."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(frozen=True)
class Permit:
    """The breaker's verdict on one call about to go out."""

    service: str
    allowed: bool
    probe: bool = False
    failures: int = 0
    retry_after: int = 0  # whole seconds until a call may go, when not allowed


def _key(service: str) -> str:
    return f"{KEY_PREFIX}{service}"


def settings() -> tuple[int, float]:
    """Return (failures in a row that open a breaker, its cool-down in seconds)."""
    config = current_app.config
    return (
        int(config.get("PROVIDER_BREAKER_FAILURES", 5)),
        float(config.get("PROVIDER_BREAKER_COOLDOWN_SECONDS", 30.0)),
    )


def check(service: str, *, probe_seconds: float) -> Permit:
    """Ask whether a call to `service` may go out now (one Redis round trip).

    `probe_seconds` bounds how long a half-open probe may take before another
    caller may probe instead. Lets the call through when Redis is unreachable.
    """
    try:
        raw = get_redis().register_script(_CHECK)(
            keys=[_key(service)], args=[math.ceil(probe_seconds * 1000)]
        )
    except redis.RedisError as exc:
        log.warning("breaker_unavailable", service=service, error_type=type(exc).__name__)
        return Permit(service, allowed=True)
    state, number = (int(part) for part in cast(list[int], raw))
    if state == State.OPEN:
        return Permit(service, allowed=False, retry_after=max(1, math.ceil(number / 1000)))
    return Permit(service, allowed=True, probe=state == State.HALF_OPEN, failures=number)


def record_failure(permit: Permit) -> bool:
    """Count a failed call; return True when it opened the breaker."""
    threshold, cooldown = settings()
    cooldown_ms = math.ceil(cooldown * 1000)
    # Failures further apart than this do not add up to a run.
    ttl_ms = max(2 * cooldown_ms, 60_000)
    try:
        opened = get_redis().register_script(_FAILURE)(
            keys=[_key(permit.service), SERVICES_KEY],
            args=[threshold, cooldown_ms, int(permit.probe), ttl_ms, permit.service],
        )
    except redis.RedisError:
        return False
    if opened:
        log.warning("breaker_opened", service=permit.service, cooldown_seconds=cooldown)
    return bool(opened)


def record_success(permit: Permit) -> None:
    """Report an answered call: closes a half-open breaker, resets a failure count."""
    if not (permit.probe or permit.failures):
        return  # nothing to reset: no write on the healthy path
    try:
        get_redis().register_script(_SUCCESS)(keys=[_key(permit.service)], args=[int(permit.probe)])
    except redis.RedisError:
        return
    if permit.probe:
        log.info("breaker_closed", service=permit.service)


def states(client: redis.Redis) -> dict[str, State]:
    """Return the state of every breaker that ever counted a failure (for `/metrics`)."""
    services = sorted(
        member.decode() if isinstance(member, bytes) else str(member)
        for member in cast(set[bytes], client.smembers(SERVICES_KEY))
    )
    now_ms = _server_millis(client)
    found: dict[str, State] = {}
    for service in services:
        open_until = client.hget(_key(service), "open_until")
        until = int(cast(bytes, open_until)) if open_until else 0
        if until == 0:
            found[service] = State.CLOSED
        else:
            found[service] = State.OPEN if now_ms < until else State.HALF_OPEN
    return found


def _server_millis(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
