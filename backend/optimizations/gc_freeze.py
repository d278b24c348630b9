"""Keeps the loaded app's objects out of the garbage collector's full collections.

Speeds up: the tail latency of every request a gunicorn worker serves. A full
(generation 2) collection walks every tracked object, and a loaded app has
~96,000 of them (routes, schemas, SQL builders, modules): ~40 ms of CPU during
which the worker serves nothing (200-450 ms of wall time on the busy benchmark
machine). Measured in-process (20,000 mixed catalog reads under gevent with the
layer on): without the freeze one full collection in those 20,000 requests,
with it none, and the young collections stay below 0.2 ms. `bench/rest.py`'s
p99 could not tell the two apart on that busy machine (70-83 ms either way,
from CPU contention); the pauses it removes are rarer than 1 in 100 requests
but stall all of a worker's requests at once.

Costs: objects frozen at startup are never collected, even if they become
garbage later (the app's objects live as long as the worker anyway).

Why it is correct: `gc.freeze()` only moves the objects that exist now into a
permanent generation the collector skips; it changes no reference and no
object, and collections of everything created later go on as before.

Then, for what the worker creates while it serves: after every full collection
the survivors are frozen too (`freeze_survivors`). Speeds up: a box holding tens
of thousands of event streams (`bench/sse.py`'s storm and latency-under-load
rows). Each held stream is ~70 tracked objects, so a worker holding 15,000 has
over a million; a full collection walked them all (400-600 ms with every stream
of the worker stalled, ten of them while a storm's streams opened) and collected
nothing (`collected=0` in every one, measured with `gc.callbacks` in the
benchmark's workers: streams hold no reference cycles, and what they leave is
freed by reference counting). Frozen, they are skipped; the next full collection
walks only what was created since, and comes only once that has grown by a
quarter of what the last one found (CPython's own rule) and, here, after at least
100 middle-generation collections instead of 10 (a full collection found nothing
anyway): in the latency-under-load row, the p99 went from 34-53 ms in four runs
to 35-37 ms in three, its one or two full collections of the ten seconds gone.

Costs: a reference cycle that becomes garbage after it was frozen stays until
the next thaw: every `THAW_SECONDS` (10 min), one full collection walks
everything (the frozen objects are put back first) and frees such cycles.

Installed from `backend.gunicorn_conf.post_worker_init` (once the worker has
loaded the app), not by `init_app`: tests and CLI commands build many apps.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from backend.optimizations.switch import enabled_in

THAW_SECONDS = 600.0
FULL_AFTER_MIDDLE = 100  # middle-generation collections between full ones at most (CPython: 10)


def freeze_loaded_app(app: object) -> bool:
    """Collect once, then freeze every object alive now; return whether it did.

    Does nothing unless `app` is a Flask app with `OPTIMIZATIONS` on (gunicorn
    hands over a stand-in app when loading failed).
    """
    if not enabled_in(app):
        return False
    gc.collect()
    gc.freeze()
    return True


class SurvivorFreezer:
    """A `gc.callbacks` entry: freeze after each full collection, thaw one every `thaw_every` s."""

    def __init__(self, thaw_every: float) -> None:
        """Start the thaw period now."""
        self.thaw_every = thaw_every
        self.thawed_at = time.monotonic()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        """Before a full collection, thaw if one is due; after it, freeze the survivors."""
        if info.get("generation") != 2:
            return
        if phase == "stop":
            gc.freeze()
        elif time.monotonic() - self.thawed_at >= self.thaw_every:
            gc.unfreeze()  # this collection walks everything: late cycles are freed
            self.thawed_at = time.monotonic()


def freeze_survivors(thaw_every: float = THAW_SECONDS) -> Callable[[], None]:
    """Freeze what survives each full collection from now on, and make full ones rarer.

    Returns what uninstalls it (and puts the collector's thresholds back).
    """
    freezer = SurvivorFreezer(thaw_every)
    before = gc.get_threshold()
    gc.set_threshold(before[0], before[1], FULL_AFTER_MIDDLE)
    gc.callbacks.append(freezer)

    def uninstall() -> None:
        gc.callbacks.remove(freezer)
        gc.set_threshold(*before)

    return uninstall
