"""Periodic jobs for `rq cron jobs/schedule.py` (the Procfile's `cron:` process).

`rq cron` only enqueues; workers run the jobs. Register each job with
`rq.cron.register(func, queue_name=..., interval=SECONDS | cron="m h dom mon dow")`.
"""

from rq import cron

from jobs import maintenance

# Every 5 minutes a worker proves it can reach the database and Redis; a
# failure shows up in RQ's failed registry and the worker logs.
cron.register(maintenance.check_health, queue_name="low", interval=300)
# Idempotency keys live 24 h; purge the expired ones every hour.
cron.register(maintenance.purge_idempotency_keys, queue_name="low", interval=3600)
