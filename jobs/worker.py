"""The RQ worker class the Procfile runs: `rq worker -w jobs.worker.Worker`."""

from __future__ import annotations

from typing import Any

import rq

from jobs.base import get_app


class Worker(rq.Worker):
    """A forking RQ worker that builds the Flask app once, before it forks per job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the worker and the app its jobs run in."""
        super().__init__(*args, **kwargs)
        get_app()
