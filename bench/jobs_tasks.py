"""Job functions for `bench/jobs.py`, importable by RQ workers as `bench.jobs_tasks`.

`raw_noop` is a plain RQ job (no app, no record); `tracked_noop` is the same work behind the
project's job layer (`jobs.base.job`: app context, record started/succeeded, terminal event);
`progress_ticker` reports progress at a steady pace with the wall-clock time of each call in
its message, so that a client can measure event latency end to end.
"""

from __future__ import annotations

import time

from jobs.base import job, progress


def raw_noop() -> None:
    """Do nothing (the RQ baseline)."""


@job
def tracked_noop() -> None:
    """Do nothing, through the job layer."""


@job
def progress_ticker(steps: int, interval: float) -> dict[str, int]:
    """Report `steps` progress updates, one every `interval` seconds.

    Each message is `t=<time.time_ns()>` taken just before `progress` is called.
    """
    next_at = time.monotonic()
    for i in range(1, steps + 1):
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
        progress(i, steps, f"t={time.time_ns()}")
    return {"steps": steps}
