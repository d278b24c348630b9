"""Periodic jobs for `rq cron jobs/schedule.py` (the Procfile's `cron:` process).

`rq cron` only enqueues; workers run the jobs. Register each job with
`rq.cron.register(func, queue_name=..., interval=SECONDS | cron="m h dom mon dow")`.
"""

import os

from rq import cron

from backend.services.webhooks import DISPATCH_BUDGET_SECONDS
from jobs import files, maintenance, payments, webhooks

# Every 5 minutes a worker proves it can reach the database and Redis; a
# failure shows up in RQ's failed registry and the worker logs.
cron.register(maintenance.check_health, queue_name="low", interval=300)
# Idempotency keys live 24 h; purge the expired ones every hour.
cron.register(maintenance.purge_idempotency_keys, queue_name="low", interval=3600)
# Jobs whose worker died (SIGKILL, OOM, lost machine) are failed or requeued.
cron.register(
    maintenance.reap_abandoned_jobs,
    queue_name="high",
    interval=int(os.environ.get("JOBS_REAP_INTERVAL_SECONDS", "60")),
)
# Spent tokens, long-ended sessions and old read notifications, daily at 03:17.
cron.register(maintenance.purge_old_records, queue_name="low", cron="17 3 * * *")
# Product-image uploads never attached and expired exports, hourly.
cron.register(files.cleanup_files, queue_name="low", interval=3600)
# Payments whose webhook never came: ask the provider (a missed webhook must not strand an order).
cron.register(
    payments.reconcile_payments,
    queue_name="default",
    interval=int(os.environ.get("PAYMENTS_RECONCILE_INTERVAL_SECONDS", "300")),
)
# Webhook deliveries that came due (retries, leases of killed workers, lost wake-ups).
# A sweep left waiting longer than its interval is dropped (`ttl`): the next one does it.
_WEBHOOKS_SWEEP = int(os.environ.get("WEBHOOKS_SWEEP_INTERVAL_SECONDS", "5"))
cron.register(
    webhooks.dispatch,
    queue_name="default",
    interval=_WEBHOOKS_SWEEP,
    ttl=max(_WEBHOOKS_SWEEP, 1) * 2,
    job_timeout=int(DISPATCH_BUDGET_SECONDS + float(os.environ.get("WEBHOOKS_LEASE_SECONDS", "60")))
    + 30,
)
