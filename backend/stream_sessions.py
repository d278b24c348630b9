"""The periodic check of open streams' sessions: one batch per process, not one per stream.

Revoking a session pushes its id to the hub, which ends its streams at once;
this is the fallback for a push that went astray (published while the hub was
reconnecting, say). Every `every` seconds the sessions of all the hub's open
streams are handed together to the check the caller gave (`ended_among`: which
of these may no longer read?), in the caller's app context, and the streams of
those it names are ended as a pushed revocation would end them. One check per
process and period, whatever the number of streams: a reconnect storm's
streams do not all ask again together a period after they opened. The stream
knows nothing of accounts: the check is handed in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import structlog
from flask import Flask

from backend.sse import Hub

log = structlog.get_logger(__name__)

EndedAmong = Callable[[set[int]], set[int]]
SHORTEST_PERIOD = 0.05  # s: a period of 0 (tests) would spin


@dataclass(frozen=True)
class _Check:
    app: Flask
    ended_among: EndedAmong
    every: float


class SessionSweep:
    """Ends, every period, the streams of a hub whose sessions the check says have ended."""

    def __init__(self, hub: Hub) -> None:
        """Prepare the sweep of `hub`'s streams (it starts with the first `use`)."""
        self.hub = hub
        self._check: _Check | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._changed = threading.Event()  # a new check: its period starts now

    def use(self, *, app: Flask, ended_among: EndedAmong, every: float) -> None:
        """Check with `ended_among`, in `app`'s context, every `every` seconds.

        The latest call wins. Starts the sweep the first time (again if it ended).
        """
        check = _Check(app, ended_among, max(every, SHORTEST_PERIOD))
        if check == self._check and self._thread is not None:
            return
        with self._lock:
            self._check = check
            self._changed.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sse-sessions", daemon=True)
                self._thread.start()

    def sweep(self) -> set[int]:
        """Check the sessions of the open streams once, end those ended; return their ids.

        Raises what the check raises (nothing is ended then).
        """
        session_ids = self.hub.session_ids()
        check = self._check  # read after: a stream among those set its check before it joined
        if check is None or not session_ids:
            return set()
        with check.app.app_context():
            ended = check.ended_among(session_ids) & session_ids
        self.hub.end_sessions(ended, "revoked")
        return ended

    def _run(self) -> None:
        while not self.hub.closing and self._check is not None:
            self._changed.clear()
            if self._changed.wait(self._check.every) or self.hub.closing:
                continue
            try:
                ended = self.sweep()
            except Exception as exc:  # noqa: BLE001 - the sweep outlives any one failed check
                log.warning("stream_session_check_failed", error=repr(exc))
            else:
                if ended:
                    log.info("stream_sessions_ended", sessions=len(ended))


_sweeps: WeakKeyDictionary[Hub, SessionSweep] = WeakKeyDictionary()
_sweeps_lock = threading.Lock()


def sweep_for(hub: Hub) -> SessionSweep:
    """Return the sweep of `hub`'s streams (one per hub)."""
    with _sweeps_lock:
        sweep = _sweeps.get(hub)
        if sweep is None:
            sweep = _sweeps[hub] = SessionSweep(hub)
        return sweep
