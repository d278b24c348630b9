"""Readiness: can this process reach its database and Redis right now?"""

from __future__ import annotations

from flask import current_app

from backend.db import db
from backend.errors import ServiceUnavailable
from backend.redis_store import client_from_url, redis_url


def _check_database() -> None:
    with db.connection_context():
        db.execute_sql("SELECT 1")


def _check_redis(timeout: float) -> None:
    client = client_from_url(redis_url(), timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def check_readiness() -> dict[str, str]:
    """Return `{"database": "ok", "redis": "ok"}` when both answer within the timeout.

    Raises `ServiceUnavailable` whose `errors` names each failing dependency.
    """
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
