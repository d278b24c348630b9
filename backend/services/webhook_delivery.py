"""Sending recorded webhooks (workers only): claim, send concurrently, record, retry, disable.

`dispatch` is what the `jobs.webhooks.dispatch` job runs, woken after a commit
that recorded deliveries and swept by the cron every
`WEBHOOKS_SWEEP_INTERVAL_SECONDS`:

- **Claiming.** `claim` takes up to N due deliveries (`pending`,
  `next_attempt_at` passed) with one conditional UPDATE that moves their
  `next_attempt_at` to the end of a lease (`WEBHOOKS_LEASE_SECONDS`) under a
  fresh `claim_token` and counts the attempt (on PostgreSQL the candidates are
  picked `FOR UPDATE SKIP LOCKED`; SQLite serialises writers). The UPDATE
  repeats the "due" condition, so two dispatchers never get the same delivery;
  one whose worker died mid-send is due again when its lease runs out and is
  sent again with the same `webhook-id` (at least once).
- **Sending.** A thread pool of `WEBHOOKS_CONCURRENCY` threads shares one
  `backend.webhook_sender.Sender` (one connection pool, connections reused);
  the main thread claims as threads come free (polling every `POLL_SECONDS`
  while sends are in flight) and does every database write.
- **Outcomes.** 2xx: `succeeded`. 410: `failed`, and the endpoint is disabled.
  Anything else (another status, a redirect, a timeout, a refused or
  unreachable destination): retried after `WEBHOOKS_RETRY_SCHEDULE[attempt-1]`
  seconds (±20 % jitter; the last delay repeats) until `WEBHOOKS_MAX_ATTEMPTS`
  attempts, then `failed`. An outcome is written only under the claim's token:
  a delivery reclaimed after its lease ran out keeps its new claim.
- **Disabling.** Each endpoint counts failed attempts since its last success;
  when the run reaches `WEBHOOKS_DISABLE_AFTER_FAILURES` and its first failure
  is at least `WEBHOOKS_DISABLE_AFTER_SECONDS` old, the endpoint is disabled
  (as on a 410): its pending deliveries fail, every admin gets a notification
  and the `admin` channel a `webhook.disabled` event.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
import structlog
from flask import current_app
from peewee import PostgresqlDatabase, fn

from backend import metrics
from backend.channels import ADMIN
from backend.db import db
from backend.events import publish_after_commit
from backend.models import User, WebhookDelivery, WebhookEndpoint, utcnow
from backend.redis_store import get_redis
from backend.schemas.webhooks import WebhookSchema
from backend.services import notifications, webhooks
from backend.webhook_sender import Message, Outcome, Sender

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.05
JITTER = 0.2
GONE = "the endpoint answered 410 Gone"
_jitter = random.Random()  # noqa: S311 - spreading retries, not a secret


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for one attempt: what to send, under which claim."""

    delivery_id: int
    endpoint_id: int
    token: str
    attempts: int
    occurred_at: datetime
    message: Message | None  # None: the endpoint is disabled, nothing is sent


def _body(delivery: WebhookDelivery) -> str:
    document = {"type": delivery.event_type, "timestamp": delivery.occurred_at.isoformat(),
                "data": delivery.payload}  # fmt: skip
    return json.dumps(document, separators=(",", ":"), default=str)


def _claimed(delivery: WebhookDelivery, endpoint: WebhookEndpoint, now: datetime) -> Claimed:
    message = None
    if endpoint.is_active:
        keys = [endpoint.secret]
        if endpoint.previous_secret and (endpoint.previous_secret_until or now) > now:
            keys.append(endpoint.previous_secret)
        message = Message(endpoint.url, delivery.webhook_id, _body(delivery), tuple(keys))
    return Claimed(delivery.id, endpoint.id, str(delivery.claim_token), delivery.attempts,
                   delivery.occurred_at, message)  # fmt: skip


def claim(*, limit: int) -> list[Claimed]:
    """Claim up to `limit` due deliveries for one attempt each (see the module's doc)."""
    now = utcnow()
    until = now + timedelta(seconds=float(current_app.config["WEBHOOKS_LEASE_SECONDS"]))
    token = secrets.token_hex(8)
    due = (WebhookDelivery.status == "pending") & (WebhookDelivery.next_attempt_at <= now)
    candidates = (
        WebhookDelivery.select(WebhookDelivery.id)
        .where(due)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if isinstance(db.obj, PostgresqlDatabase):
        # In a CTE, so the rows are picked and locked once. As a plain `IN (subquery)`
        # PostgreSQL may rescan it per outer row, and each rescan's lock step skips the
        # rows this very UPDATE already moved: the LIMIT would be ignored.
        candidates = candidates.for_update(skip_locked=True)
    picked = candidates.cte("picked")
    lease = {"claim_token": token, "claimed_until": until, "next_attempt_at": until,
             "attempts": WebhookDelivery.attempts + 1, "updated_at": now}  # fmt: skip
    with db.atomic():
        taken = (
            WebhookDelivery.update(**lease)
            .with_cte(picked)
            .where(WebhookDelivery.id.in_(picked.select(picked.c.id)) & due)
            .execute()
        )
        if taken == 0:  # (Python's sqlite3 says -1 for an UPDATE that starts with WITH)
            return []
        ours = (
            (WebhookDelivery.status == "pending")
            & (WebhookDelivery.next_attempt_at == until)  # on the "due" index
            & (WebhookDelivery.claim_token == token)
        )
        rows = (
            WebhookDelivery.select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint)
            .where(ours)
            .order_by(WebhookDelivery.id)
        )
        return [_claimed(row, row.endpoint, now) for row in rows]


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones (schedule, ±20 % jitter)."""
    schedule: list[float] = current_app.config["WEBHOOKS_RETRY_SCHEDULE"]
    delay = schedule[min(attempts, len(schedule)) - 1]
    return delay * _jitter.uniform(1 - JITTER, 1 + JITTER)


def _verdict(claimed: Claimed, outcome: Outcome) -> str:
    if claimed.message is None:
        return "skipped"
    if outcome.ok:
        return "succeeded"
    if outcome.status == 410:
        return "gone"
    if claimed.attempts >= int(current_app.config["WEBHOOKS_MAX_ATTEMPTS"]):
        return "failed"
    return "retried"


def _error(outcome: Outcome, verdict: str) -> str | None:
    if verdict == "skipped":
        return "the endpoint was disabled"
    if outcome.error or outcome.ok:
        return outcome.error
    return f"the endpoint answered {outcome.status}"


def _write(claimed: Claimed, outcome: Outcome, verdict: str, now: datetime) -> bool:
    values: dict[str, Any] = {
        "status": {"succeeded": "succeeded", "retried": "pending"}.get(verdict, "failed"),
        "response_status": outcome.status, "response_body": outcome.body,
        "last_error": _error(outcome, verdict),
        "duration_ms": round(outcome.seconds * 1000), "claimed_until": None,
        "claim_token": None, "updated_at": now, "next_attempt_at": None,
    }  # fmt: skip
    if verdict == "succeeded":
        values["delivered_at"] = now
    elif verdict == "retried":
        values["next_attempt_at"] = now + timedelta(seconds=retry_delay(claimed.attempts))
    ours = (WebhookDelivery.id == claimed.delivery_id) & (
        WebhookDelivery.claim_token == claimed.token
    )
    return bool(WebhookDelivery.update(**values).where(ours).execute())


def _count_failure(endpoint_id: int, now: datetime) -> bool:
    """Count a failed attempt; disable the endpoint when its failure run is long enough."""
    config = current_app.config
    endpoint = WebhookEndpoint.id == endpoint_id
    WebhookEndpoint.update(
        consecutive_failures=WebhookEndpoint.consecutive_failures + 1,
        failing_since=fn.COALESCE(WebhookEndpoint.failing_since, now), updated_at=now,
    ).where(endpoint).execute()  # fmt: skip
    started_before = now - timedelta(seconds=float(config["WEBHOOKS_DISABLE_AFTER_SECONDS"]))
    long_run = (
        WebhookEndpoint.consecutive_failures >= int(config["WEBHOOKS_DISABLE_AFTER_FAILURES"])
    ) & (WebhookEndpoint.failing_since <= started_before)
    reason = "every attempt failed for too long"
    return _disable(endpoint & long_run, endpoint_id, reason, now)


def _disable(where: Any, endpoint_id: int, reason: str, now: datetime) -> bool:
    active = where & (WebhookEndpoint.is_active == True)  # noqa: E712 - SQL comparison
    changed = (
        WebhookEndpoint.update(
            is_active=False, disabled_reason=reason, disabled_at=now, updated_at=now
        )
        .where(active)
        .execute()
    )
    if not changed:
        return False
    webhooks.fail_pending(endpoint_id=endpoint_id, reason="the endpoint was disabled")
    _tell_admins(WebhookEndpoint.get_by_id(endpoint_id), reason)
    return True


def _tell_admins(endpoint: WebhookEndpoint, reason: str) -> None:
    """Notify every active admin and publish `webhook.disabled` on `admin` (after commit)."""
    admins = User.select(User.id).where((User.role == "admin") & (User.is_active == True))  # noqa: E712
    for admin in admins:
        notifications.notify(
            user_id=admin.id, kind="webhook.disabled", title="A webhook was disabled",
            body=f"{endpoint.url[:300]} was disabled: {reason}.",
            data={"webhook_id": endpoint.id, "url": endpoint.url, "reason": reason},
        )  # fmt: skip
    publish_after_commit(ADMIN, "webhook.disabled", WebhookSchema().dump(endpoint))
    log.warning("webhook_disabled", webhook=endpoint.id, reason=reason)


def _apply(claimed: Claimed, outcome: Outcome, now: datetime) -> str:
    verdict = _verdict(claimed, outcome)
    if not _write(claimed, outcome, verdict, now):
        return "lost"  # the lease ran out and another dispatcher has it now
    endpoint = WebhookEndpoint.id == claimed.endpoint_id
    if verdict == "succeeded":
        WebhookEndpoint.update(consecutive_failures=0, failing_since=None).where(
            endpoint & (WebhookEndpoint.consecutive_failures > 0)
        ).execute()
    elif verdict == "gone":
        _disable(endpoint, claimed.endpoint_id, GONE, now)
    elif verdict != "skipped":
        _count_failure(claimed.endpoint_id, now)
    return verdict


def record_outcomes(results: list[tuple[Claimed, Outcome]]) -> Counter[str]:
    """Write the outcomes of finished attempts in one transaction; count them by verdict.

    Verdicts: `succeeded`, `retried`, `failed`, `gone`, `skipped` (endpoint
    disabled meanwhile), `lost` (the claim expired and was taken over).
    """
    now = utcnow()
    verdicts: Counter[str] = Counter()
    observed = []
    with db.atomic():
        for claimed, outcome in results:
            verdict = _apply(claimed, outcome, now)
            verdicts[verdict] += 1
            lag = (now - claimed.occurred_at).total_seconds() if verdict == "succeeded" else None
            observed.append((verdict, outcome.seconds, lag))
    try:
        metrics.observe_webhook_attempts(get_redis(), observed)
    except redis.RedisError as exc:
        log.warning("webhook_metrics_failed", error=str(exc))
    return verdicts


def _attempt(sender: Sender, claimed: Claimed) -> Outcome:
    if claimed.message is None:
        return Outcome(None, None, None, 0.0)
    return sender.send(claimed.message)


class _Run:
    """One dispatcher run: the sends in flight and when to claim more."""

    def __init__(self, concurrency: int, budget: float) -> None:
        self.concurrency = concurrency
        self.ends = time.monotonic() + budget
        self.in_flight: dict[Future[Outcome], Claimed] = {}
        self.last_claim_full = True
        self.last_claim_at = 0.0
        self.verdicts: Counter[str] = Counter()

    def should_claim(self) -> bool:
        free = self.concurrency - len(self.in_flight)
        if free <= 0 or time.monotonic() >= self.ends:
            return False
        if not self.in_flight:
            return True
        polled = time.monotonic() - self.last_claim_at >= POLL_SECONDS
        return (self.last_claim_full or polled) and free >= max(1, self.concurrency // 4)

    def claim(self, pool: ThreadPoolExecutor, sender: Sender) -> None:
        free = self.concurrency - len(self.in_flight)
        claimed = claim(limit=free)
        self.last_claim_full, self.last_claim_at = len(claimed) == free, time.monotonic()
        for item in claimed:
            self.in_flight[pool.submit(_attempt, sender, item)] = item

    def collect(self) -> None:
        done, _ = wait(list(self.in_flight), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        if done:
            finished = [(self.in_flight.pop(future), future.result()) for future in done]
            self.verdicts.update(record_outcomes(finished))


def dispatch(*, budget_seconds: float = webhooks.DISPATCH_BUDGET_SECONDS) -> dict[str, int]:
    """Send due deliveries until none is left (or `budget_seconds` passed); count the verdicts.

    Past the budget it stops claiming, finishes what is in flight and wakes the
    next run if more may be due.
    """
    try:
        get_redis().delete(webhooks.WAKE_KEY)  # from now on, a new event queues another run
    except redis.RedisError as exc:
        log.warning("webhook_wake_reset_failed", error=str(exc))
    config = current_app.config
    concurrency = int(config["WEBHOOKS_CONCURRENCY"])
    sender = Sender(
        timeout=float(config["WEBHOOKS_TIMEOUT_SECONDS"]), connections=concurrency,
        allow_private=bool(config["WEBHOOKS_ALLOW_PRIVATE_NETWORKS"]),
    )  # fmt: skip
    run = _Run(concurrency, budget_seconds)
    try:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="webhook") as pool:
            while True:
                if run.should_claim():
                    run.claim(pool, sender)
                if not run.in_flight:
                    break
                run.collect()
    finally:
        sender.close()
    if run.last_claim_full and time.monotonic() >= run.ends:
        webhooks.wake()
    return dict(run.verdicts)
