"""Webhook jobs: send the deliveries that are due (woken after a commit, and swept by the cron)."""

from __future__ import annotations

from backend.services import webhook_delivery
from jobs.base import job


@job
def dispatch() -> dict[str, int]:
    """Send every due webhook delivery (see `backend.services.webhook_delivery`).

    Queued after a commit that recorded deliveries, and by the cron every
    `WEBHOOKS_SWEEP_INTERVAL_SECONDS` (retries that came due, wake-ups that
    were lost, leases of killed workers that ran out). Returns the attempts
    made by verdict (`succeeded`, `retried`, `failed`, ...).
    """
    return webhook_delivery.dispatch()
