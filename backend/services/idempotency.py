"""Idempotency keys: the first response to a keyed request is kept and replayed for 24 h.

Concurrent requests with one key are serialised by a unique row: the first
inserts it and does the work; the others wait for its response and replay
it. A holder that died is taken over after `STALE_AFTER`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from peewee import IntegrityError

from backend.db import db
from backend.errors import Conflict, ValidationFailed
from backend.models import IdempotencyRecord, Order, User, utcnow

LIFETIME = timedelta(hours=24)
STALE_AFTER = timedelta(seconds=60)
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Replay:
    """A stored first response."""

    status: int
    body: Any


def begin(*, user: User, key: str, request_hash: str) -> Replay | int:
    """Claim `key` for this request, or return the first response to replay.

    Returns the claimed record's id when the caller should do the work.
    Raises `ValidationFailed` (`idempotency_key_reused`) when the key was used
    with a different request, and `Conflict` (`idempotency_in_progress`) when
    the first request is still running after `WAIT_SECONDS`.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        outcome = _try_claim(user, key, request_hash)
        if outcome is not None:
            return outcome
        if time.monotonic() >= deadline:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                error="idempotency_in_progress",
                headers={"Retry-After": "1"},
            )
        time.sleep(POLL_SECONDS)


def complete(record_id: int, *, status: int, body: Any) -> None:
    """Store the response of the claimed request, to be replayed."""
    IdempotencyRecord.update(response_status=status, response_body=body, updated_at=utcnow()).where(
        IdempotencyRecord.id == record_id
    ).execute()


def abandon(record_id: int) -> None:
    """Release a claim whose request failed unexpectedly, so a retry can run."""
    IdempotencyRecord.delete().where(IdempotencyRecord.id == record_id).execute()


def purge_expired() -> int:
    """Delete keys older than 24 h (and free them on orders); return how many were purged."""
    now = utcnow()
    with db.atomic():
        expired = IdempotencyRecord.select().where(IdempotencyRecord.expires_at <= now)
        for record in expired:
            Order.update(idempotency_key=None).where(
                (Order.user == record.user_id) & (Order.idempotency_key == record.key)
            ).execute()
        return int(IdempotencyRecord.delete().where(IdempotencyRecord.expires_at <= now).execute())


def _try_claim(user: User, key: str, request_hash: str) -> Replay | int | None:
    now = utcnow()
    try:
        with db.atomic():
            claimed = IdempotencyRecord.create(
                user=user, key=key, request_hash=request_hash, locked_at=now,
                expires_at=now + LIFETIME,
            )  # fmt: skip
        return int(claimed.id)
    except IntegrityError:
        pass
    record = IdempotencyRecord.get_or_none(
        (IdempotencyRecord.user == user.id) & (IdempotencyRecord.key == key)
    )
    if record is None:
        return None  # purged meanwhile: claim again
    if record.expires_at <= now:
        IdempotencyRecord.delete().where(IdempotencyRecord.id == record.id).execute()
        return None
    if record.request_hash != request_hash:
        message = "This Idempotency-Key was already used for a different request."
        raise ValidationFailed(message, error="idempotency_key_reused")
    if record.response_status is not None:
        return Replay(int(record.response_status), record.response_body)
    if now - record.locked_at > STALE_AFTER and _take_over(record, now):
        return int(record.id)
    return None


def _take_over(record: IdempotencyRecord, now: Any) -> bool:
    taken = (
        IdempotencyRecord.update(locked_at=now)
        .where(
            (IdempotencyRecord.id == record.id) & (IdempotencyRecord.locked_at == record.locked_at)
        )
        .execute()
    )
    return bool(taken == 1)
