"""Readiness: is this process serving (not draining), and can it reach its database and Redis?"""

from __future__ import annotations

from flask import current_app

from backend import draining
from backend.db import db
from backend.errors import ServiceUnavailable
from backend.redis_store import redis_target, short_lived_client


def _check_database() -> None:
    with db.connection_context():
        db.execute_sql("SELECT 1")


def _check_redis(timeout: float) -> None:
    # A connection of its own (through the sentinels when they are set): a busy
    # pool must not make a live Redis look down.
    with short_lived_client(redis_target(), timeout=timeout) as client:
        client.ping()


DRAINING_RETRY_AFTER = "1"


def refuse_while_draining(message: str) -> None:
    """Raise `ServiceUnavailable` (`draining`, `Retry-After`) while this process drains.

    What is refused then opens on another instance: readiness, new event streams.
    """
    if draining.active():
        raise ServiceUnavailable(
            message,
            error="draining",
            errors={"instance": "draining"},
            headers={"Retry-After": DRAINING_RETRY_AFTER},
        )


def check_readiness() -> dict[str, str]:
    """Return `{"database": "ok", "redis": "ok"}` when both answer within the timeout.

    Raises `ServiceUnavailable` whose `errors` names each failing dependency;
    while the process drains (a graceful shutdown), `draining` with
    `{"instance": "draining"}`, before looking at either.
    """
    refuse_while_draining("Draining: this instance is shutting down; send requests to another one.")
    timeout = float(current_app.config["READYZ_TIMEOUT"])
    problems: dict[str, str] = {}
    for name, check in (("database", _check_database), ("redis", lambda: _check_redis(timeout))):
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            problems[name] = type(exc).__name__
    if problems:
        raise ServiceUnavailable(
            "Not ready: " + ", ".join(sorted(problems)) + " unreachable.", errors=problems
        )
    return {"database": "ok", "redis": "ok"}
