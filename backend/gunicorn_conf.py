"""gunicorn settings: `gunicorn -c python:backend.gunicorn_conf wsgi:app`.

gevent workers so that thousands of SSE streams share a process; psycopg2 is
made cooperative (psycogreen) in each worker; Prometheus counters from every
worker are added up through a shared folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from backend import draining
from backend.config import VAR_DIR
from backend.web_sizing import for_this_box

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
SIZING = for_this_box()  # CPUs, open-file limit, accept-queue cap; see backend.web_sizing
workers = SIZING.workers
worker_class = "gevent"
worker_connections = SIZING.worker_connections
backlog = SIZING.backlog
timeout = 30
graceful_timeout = 20
keepalive = 5
# The longest request line and header gunicorn allows: anything a documented
# query can hold fits, so what is longer is refused by gunicorn itself (414/431).
limit_request_line = 8190
limit_request_field_size = 8190
control_socket_disable = True  # gunicorn >= 25 would otherwise write to ~/.gunicorn
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# One folder per gunicorn master (this module is read by the master): several instances
# on one machine, each with its own port, must not wipe or add up each other's files.
PROMETHEUS_DIR = Path(
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus" / str(os.getpid()))
    )
)


def on_starting(server: Any) -> None:
    """Start each run with empty Prometheus multiprocess files."""
    shutil.rmtree(PROMETHEUS_DIR, ignore_errors=True)
    PROMETHEUS_DIR.mkdir(parents=True, exist_ok=True)


def on_exit(server: Any) -> None:
    """Remove this run's Prometheus files (a folder named after a master that is gone)."""
    if PROMETHEUS_DIR.parent == VAR_DIR / "prometheus":
        shutil.rmtree(PROMETHEUS_DIR, ignore_errors=True)


def post_fork(server: Any, worker: Any) -> None:
    """Make psycopg2 cooperate with gevent in this worker."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def post_worker_init(worker: Any) -> None:
    """Drain on SIGTERM (see `backend.draining`); freeze the app; accept in batches.

    On SIGTERM (a graceful stop of the instance) the worker starts draining:
    `/readyz` answers 503, requests in flight close their connection after
    their response, and event streams end at once (with a `retry:` hint) so
    their clients resume on another instance; then gunicorn's own handler
    stops accepting and waits for the rest, up to `graceful_timeout`.
    The freezes (the loaded app, then what survives each full collection) and the
    batched accepts are part of the optimisation layer
    (`backend.optimizations.gc_freeze`, `backend.optimizations.accept_batch`).
    """
    import signal

    from backend.optimizations.accept_batch import install_in
    from backend.optimizations.gc_freeze import freeze_loaded_app, freeze_survivors
    from backend.sse import close_all

    install_in(worker)  # before the worker builds its servers
    if freeze_loaded_app(worker.wsgi):
        freeze_survivors()

    def stop(signum: int, frame: Any) -> None:
        draining.begin()
        close_all()
        worker.handle_exit(signum, frame)

    signal.signal(signal.SIGTERM, stop)


def pre_request(worker: Any, req: Any) -> None:
    """Track the request, so that draining can close its connection after the response."""
    draining.track(req)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """The response is done: stop tracking its request."""
    draining.untrack(req)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the Prometheus files."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
