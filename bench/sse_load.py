"""Load generator of `bench/sse.py`: SSE clients on raw asyncio sockets, in separate processes.

Each load process opens its share of streams from its own loopback source address
(127.0.0.2, 127.0.0.3, ...; each has its own ~28k ephemeral ports), in one of two modes:
- in flight (`Plan.rate` None): `in_flight` handshakes at a time, the next one starting when
  one ends (the idle and latency scenarios);
- paced (`Plan.rate` set, a reconnect storm): stream i starts at t0 + i / rate whether or not
  the earlier ones have finished, with at most `max_pending` handshakes pending at once
  (default: all of them). The processes start together (the parent sends one t0 to all).
A stream counts as connected once the response is `200` and `retry:` has arrived; per stream
the time to first byte (connect start → first response byte) and the handshake (→ `retry:`)
are recorded, and failures by reason (connect timeout, reset before headers, each HTTP status).
In latency mode every received event's `"sent_ns":<time_ns>` is turned into a receive − send
sample. The parent drives the processes through a pipe: `status`, `samples`, `close`. A
process dies with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import resource
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.stack import die_with_parent

SENT = re.compile(rb'"sent_ns":\s*(\d+)')
STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")
PER_PROCESS = 5000  # streams per load process
REPLY_TIMEOUT = 120.0  # seconds to wait for a load process to answer a command
START_TIMEOUT = 1800.0  # ... to open its streams (the caller's overall timeout comes first)


class HandshakeFailed(Exception):
    """The stream did not reach `retry:` (the message says why)."""


@dataclass(frozen=True)
class Plan:
    """What one load process does."""

    host: str
    port: int
    request: bytes  # the whole HTTP/1.1 request
    count: int
    source_ip: str
    in_flight: int = 50
    connect_timeout: float = 30.0
    max_failures: int = 50  # stop opening new streams after this many failures (in flight mode)
    record: bool = False  # collect publish → receive samples
    rate: float | None = None  # paced mode: streams started per second by this process
    max_pending: int | None = None  # paced mode: handshakes pending at once (None: `count`)


@dataclass
class Report:
    """What one load process saw."""

    started: int = 0  # connection attempts begun
    confirmed: int = 0  # streams that got `retry:`
    open: int = 0  # confirmed streams still open now
    dropped: int = 0  # confirmed streams the server closed
    failures: Counter[str] = field(default_factory=Counter)
    held_at_first_failure: int | None = None
    connect_seconds: float = 0.0
    cpu_seconds: float = 0.0
    handshakes: list[float] = field(default_factory=list)  # connect → `retry:`, seconds
    ttfb: list[float] = field(default_factory=list)  # connect → first byte, seconds (confirmed)
    late: float = 0.0  # paced mode: the furthest a start fell behind its schedule, seconds
    first_start: float = 0.0  # wall clock (time.time()) of the first attempt
    last_start: float = 0.0  # ... of the last attempt
    last_confirmed: float = 0.0  # ... of the last `retry:`
    samples: list[int] = field(default_factory=list)  # latency, ns


def http_get(path: str, host: str, port: int, token: str | None = None) -> bytes:
    """Return a minimal HTTP/1.1 GET for an event stream."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Stream(asyncio.Protocol):
    """One SSE client connection.

    It is created before the connect, so that a failure can say how far it got.
    """

    def __init__(self, pool: _Pool, started: float) -> None:
        self.pool = pool
        self.started = started  # time.monotonic() at connect start
        self.buffer = bytearray()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.first_byte = 0.0  # time.monotonic() of the first response byte (0: none yet)
        self.confirmed_at = 0.0  # ... of `retry:` (0: not yet)
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.pool.plan.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if not self.first_byte:
            self.first_byte = time.monotonic()
        self.buffer += data
        if not self.confirmed_at:
            self._handshake()
        elif self.pool.plan.record:
            end = self.buffer.rfind(b"\n\n")
            if end >= 0:
                self.pool.samples.extend(now - int(m) for m in SENT.findall(self.buffer, 0, end))
                del self.buffer[: end + 2]
        else:
            self.buffer.clear()  # heartbeats

    def _handshake(self) -> None:
        status = STATUS.match(self.buffer)
        if status and status.group(1) != b"200" and b"\r\n\r\n" in self.buffer:
            self._fail(f"HTTP {status.group(1).decode()}")
        elif status and b"retry:" in self.buffer:
            self.confirmed_at = time.monotonic()
            del self.buffer[: self.buffer.index(b"retry:")]
            if not self.ready.done():
                self.ready.set_result(None)
        elif len(self.buffer) > 65536:
            self._fail("no retry: in the first 64 KiB")

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(HandshakeFailed(reason))

    def stage(self) -> str:
        """Describe how far an unconfirmed stream got (for timeouts and early closes)."""
        status = STATUS.match(self.buffer)
        if self.transport is None:
            return "connect"
        if not self.first_byte:
            return "headers"
        if status and status.group(1) != b"200":
            return f"HTTP {status.group(1).decode()}"
        if b"\r\n\r\n" not in self.buffer:
            return "mid-headers"
        return "after 200, before retry:"

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.confirmed_at:
            self.pool.closed(self)
            return
        how = type(exc).__name__ if exc else "EOF"
        stage = self.stage()
        if stage == "headers":
            self._fail(f"reset before headers ({how})")
        elif stage.startswith("HTTP"):
            self._fail(stage)
        else:
            self._fail(f"closed {stage} ({how})")


class _Pool:
    """The streams of one load process."""

    def __init__(self, plan: Plan, t0: float) -> None:
        self.plan = plan
        self.t0 = t0  # time.monotonic() at which opening starts
        self.report = Report()
        self.streams: set[_Stream] = set()
        self.samples: list[int] = []

    def closed(self, stream: _Stream) -> None:
        if stream in self.streams:
            self.streams.discard(stream)
            self.report.dropped += 1

    async def open_all(self) -> None:
        await asyncio.sleep(max(0.0, self.t0 - time.monotonic()))
        started = time.monotonic()
        if self.plan.rate:
            await self._paced(self.plan.rate)
        else:
            await asyncio.gather(*(self._opener() for _ in range(self.plan.in_flight)))
        self.report.connect_seconds = time.monotonic() - started

    async def _opener(self) -> None:
        while self.report.started < self.plan.count and self._failures() < self.plan.max_failures:
            await self._attempt()

    async def _paced(self, rate: float) -> None:
        """Start stream i at t0 + i / rate, not waiting for earlier ones (a storm)."""
        pending = asyncio.Semaphore(self.plan.max_pending or self.plan.count)
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i in range(self.plan.count):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # always yields to the loop
            await pending.acquire()
            self.report.late = max(self.report.late, time.monotonic() - due)
            tasks.append(asyncio.create_task(self._attempt(pending)))
        await asyncio.gather(*tasks)

    async def _attempt(self, pending: asyncio.Semaphore | None = None) -> None:
        self.report.started += 1
        now = time.time()
        self.report.first_start = self.report.first_start or now
        self.report.last_start = now
        stream = _Stream(self, time.monotonic())
        try:
            await asyncio.wait_for(self._open_one(stream), self.plan.connect_timeout)
        except (HandshakeFailed, OSError, TimeoutError) as exc:
            self._record_failure(exc, stream)
        else:
            self.report.handshakes.append(stream.confirmed_at - stream.started)
            self.report.ttfb.append(stream.first_byte - stream.started)
            self.report.last_confirmed = time.time()
        finally:
            if pending is not None:
                pending.release()

    async def _open_one(self, stream: _Stream) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: stream, self.plan.host, self.plan.port,
                local_addr=(self.plan.source_ip, 0),
            )  # fmt: skip
            await stream.ready
        except BaseException:
            if stream.transport is not None:
                stream.transport.abort()
            raise
        self.report.confirmed += 1
        if stream.lost:
            self.report.dropped += 1
        else:
            self.streams.add(stream)

    def _failures(self) -> int:
        return sum(self.report.failures.values())

    def _record_failure(self, exc: BaseException, stream: _Stream) -> None:
        if self.report.held_at_first_failure is None:
            self.report.held_at_first_failure = len(self.streams)
        limit = f"{self.plan.connect_timeout:g} s"
        if isinstance(exc, TimeoutError):
            stage = stream.stage()
            reason = {
                "connect": f"connect timeout ({limit})",
                "headers": f"connected, no first byte within {limit}",
            }.get(stage, f"timeout ({limit}): {stage}")
        elif isinstance(exc, OSError):
            where = "connect" if stream.transport is None else "socket"
            reason = f"{where}: {type(exc).__name__} ({exc.strerror or exc})"
        else:
            reason = str(exc)
        self.report.failures[reason] += 1

    def snapshot(self, with_samples: bool) -> Report:
        self.report.open = len(self.streams)
        self.report.cpu_seconds = time.process_time()
        self.report.samples = list(self.samples) if with_samples else []
        return self.report

    def close_all(self) -> None:
        for stream in list(self.streams):
            self.streams.discard(stream)
            if stream.transport is not None:
                stream.transport.close()


async def _serve(plan: Plan, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    conn.send("ready")
    go = await loop.run_in_executor(None, conn.recv)  # ("go", t0 on the wall clock)
    pool = _Pool(plan, time.monotonic() + go[1] - time.time())
    await pool.open_all()
    conn.send(pool.snapshot(False))
    while True:
        try:
            command = await loop.run_in_executor(None, conn.recv)
        except (EOFError, OSError):
            command = "close"
        if command == "close":
            pool.close_all()
            await asyncio.sleep(0.2)  # let the FINs go out
            with contextlib.suppress(OSError):
                conn.send(pool.snapshot(False))
            return
        conn.send(pool.snapshot(command == "samples"))


def load_process(plan: Plan, conn: Connection) -> None:
    """Entry point of one load process: raise the open-file limit, open streams, obey."""
    die_with_parent(signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(plan, conn))


class Fleet:
    """Load processes sharing `total` streams, `PER_PROCESS` each at most."""

    def __init__(self, total: int, make_plan: Any, first_host: int = 2) -> None:
        """Prepare processes; `make_plan(count, source_ip)` returns each one's `Plan`.

        Process i opens from 127.0.0.<first_host + i> (a second fleet running beside a first
        one passes `first_host` past the first one's addresses).
        """
        context = multiprocessing.get_context("spawn")
        processes = max(1, -(-total // PER_PROCESS))
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        self.next_host = first_host + processes
        if self.next_host > 255:
            raise ValueError(f"{total} streams need source addresses past 127.0.0.255")
        for i in range(processes):
            count = total // processes + (i < total % processes)
            parent, child = context.Pipe()
            plan = make_plan(count, f"127.0.0.{first_host + i}")
            process = context.Process(target=load_process, args=(plan, child), daemon=True)
            self.pipes.append(parent)
            self.processes.append(process)

    def start(self) -> list[Report]:
        """Start the processes; let them begin at one t0; wait until each has opened its streams.

        Raises:
            TimeoutError: A process did not start or finish opening in time.
        """
        for process in self.processes:
            process.start()
        for pipe in self.pipes:
            if not pipe.poll(REPLY_TIMEOUT) or pipe.recv() != "ready":
                raise TimeoutError("a load process did not get ready")
        t0 = time.time() + 0.2
        for pipe in self.pipes:
            pipe.send(("go", t0))
        return [self._reply(pipe, START_TIMEOUT) for pipe in self.pipes]

    def ask(self, command: str) -> list[Report]:
        """Send `status`, `samples` or `close` to every process; return their reports."""
        for pipe in self.pipes:
            pipe.send(command)
        return [self._reply(pipe, REPLY_TIMEOUT) for pipe in self.pipes]

    def _reply(self, pipe: Connection, timeout: float) -> Report:
        if not pipe.poll(timeout):
            raise TimeoutError(f"a load process did not answer within {timeout:g} s")
        report = pipe.recv()
        if not isinstance(report, Report):
            raise TypeError(f"unexpected reply from a load process: {report!r}")
        return report

    def kill(self) -> None:
        """Kill every load process that is still running (by its own pid)."""
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.kill()
        for process in self.processes:
            if process.pid is not None:
                process.join(timeout=5)


@contextlib.contextmanager
def fleet(total: int, make_plan: Any, first_host: int = 2) -> Iterator[tuple[Fleet, list[Report]]]:
    """Start a `Fleet`, yield it with its first reports; close and kill it on exit."""
    group = Fleet(total, make_plan, first_host)
    try:
        yield group, group.start()
    finally:
        group.kill()  # the kernel closes whatever sockets are still open


def merge(reports: list[Report]) -> Report:
    """Add the reports of all load processes together."""
    total = Report()
    held = [r.held_at_first_failure for r in reports if r.held_at_first_failure is not None]
    starts = [r.first_start for r in reports if r.first_start]
    for report in reports:
        total.started += report.started
        total.confirmed += report.confirmed
        total.open += report.open
        total.dropped += report.dropped
        total.failures.update(report.failures)
        total.connect_seconds = max(total.connect_seconds, report.connect_seconds)
        total.cpu_seconds += report.cpu_seconds
        total.samples.extend(report.samples)
        total.handshakes.extend(report.handshakes)
        total.ttfb.extend(report.ttfb)
        total.late = max(total.late, report.late)
        total.last_start = max(total.last_start, report.last_start)
        total.last_confirmed = max(total.last_confirmed, report.last_confirmed)
    total.first_start = min(starts, default=0.0)
    if held:  # processes run side by side: where each stood when failures began
        total.held_at_first_failure = sum(
            r.held_at_first_failure if r.held_at_first_failure is not None else r.confirmed
            for r in reports
        )
    return total
