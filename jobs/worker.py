"""The RQ worker class the Procfile runs: `rq worker -w jobs.worker.Worker`."""

from __future__ import annotations

from typing import Any

import rq

from jobs.base import get_app


class Worker(rq.Worker):
    """A forking RQ worker that builds the Flask app once, before it forks per job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the worker and the app its jobs run in.

        While a job runs, the worker writes a heartbeat every
        `WORKER_HEARTBEAT_SECONDS` (default 10), by which the cron's reaper
        tells a dead worker from a slow job.
        """
        app = get_app()
        kwargs.setdefault("job_monitoring_interval", app.config["WORKER_HEARTBEAT_SECONDS"])
        super().__init__(*args, **kwargs)
