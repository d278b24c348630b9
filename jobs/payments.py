"""Payment jobs: asking the provider about payments whose webhook may have gone missing."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from backend.services import payment_provider, payments
from jobs.base import job


@job
def reconcile_payments() -> dict[str, int]:
    """Apply what the provider says about payments open longer than the configured minutes.

    `PAYMENTS_RECONCILE_AFTER_MINUTES` (10) and `PAYMENTS_RECONCILE_BATCH`
    (100 per run). Does nothing while payments are not configured.
    """
    if not payment_provider.is_enabled():
        return {"checked": 0, "changed": 0, "unreachable": 0}
    config = current_app.config
    return payments.reconcile(
        older_than=timedelta(minutes=int(config["PAYMENTS_RECONCILE_AFTER_MINUTES"])),
        limit=int(config["PAYMENTS_RECONCILE_BATCH"]),
    )
