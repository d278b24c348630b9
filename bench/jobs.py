"""Background-jobs benchmark: the job layer against raw RQ, event latency, CSV import.

Usage: `.venv/bin/python bench/jobs.py [--jobs N] [--rows N] [--postgres URL] [--skip-import]
[--timeout S]`.

1. Trivial jobs/s: `raw_noop` (plain RQ) against `tracked_noop` (`jobs.base.job`, submitted
   with `backend.services.job_tracking.submit`), both drained by the Procfile's worker class
   (`jobs.worker.Worker`, forking) with `rq worker --burst` and `rq worker-pool -n 2 --burst`.
   Each side runs in `ROUNDS` alternating drains of N/ROUNDS jobs (raw first, then tracked
   first, ...) so that machine drift weighs on both alike; a rate is the jobs over the sum
   of the drains' windows, a window running while every worker of the drain was at work:
   from the last worker's first RQ `started_at` to the first worker's last `ended_at` (for
   one worker, first job's start to last job's end). Interpreter start-up, app creation, the
   first fork and a pool's workers starting at different moments are left out (the wall
   time from spawn to exit is shown beside it, and an empty burst's start-up in the notes).
2. `job.progress` latency: gunicorn (the Procfile's `web` line, ENV=production) and one
   Procfile `worker`; an SSE client on `GET /api/v1/events` receives the progress events of a
   job that reports every 150 ms with `time.time_ns()` in its message.
3. Import: a generated CSV through `POST /api/v1/products/import`; rows/s from the job's
   `started_at` to `finished_at`, and the work horse's peak RSS (VmHWM, polled from /proc).
   On SQLite, and on a throwaway PostgreSQL database with `--postgres URL`.

Uses `DATABASE_URL` / `REDIS_URL` when set (nothing is dropped or flushed; the `default`
queue must then be empty), else a temporary SQLite file and the embedded Redis. Only loopback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path, and there `import jobs` would
# find this very file instead of the project's `jobs` package: the project root goes first.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench.stack import (  # noqa: E402 - needs the sys.path fix above
    APP_CONFIG,
    BIN,
    HOST,
    Deadline,
    Processes,
    descendants,
    embedded_redis_if_needed,
    expect,
    free_port,
    prepare_database,
    process_group,
    production_env,
    status_kib,
    wait_until_up,
)

if TYPE_CHECKING:
    import redis
    from flask import Flask

    from backend.models import User

EMAIL = "bench-jobs@example.test"
QUEUE = "default"  # where `submit` puts every job
TRACKED_NOOP = "bench.jobs_tasks.tracked_noop"
TERMINAL_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
PROGRESS_STEPS = 100
PROGRESS_INTERVAL = 0.15  # > 0.1 s: the 10/s throttle holds nothing back
ANCHOR_SINGLE = 58  # /work/shared/ANCHORS.md, rq 3.0 `rq worker --burst`, 2,000 jobs
ANCHOR_POOL = 103  # same, `rq worker-pool -n 2`
RATIO_TARGET = 0.9
ROUNDS = 4  # alternating raw/tracked drains per worker kind
P99_TARGET_MS = 50.0


@dataclass
class Line:
    """One row of the report."""

    part: str
    what: str
    result: str
    reference: str = ""
    check: str = ""


@dataclass
class Stack:
    """A running web + worker pair, with an admin's token."""

    base: str
    headers: dict[str, str]
    worker: subprocess.Popen[bytes]


@dataclass
class Drain:
    """One burst drain of N jobs."""

    jobs: int
    wall: float  # spawn to exit, seconds
    steady_jobs: int  # jobs that ended while every worker of the drain was at work
    span: float  # the seconds that took (see `execution_window`)

    @property
    def steady(self) -> float:
        """Jobs per second while every worker was at work."""
        return self.steady_jobs / self.span

    @property
    def with_startup(self) -> float:
        """Jobs per second over the wall time, start-up included."""
        return self.jobs / self.wall


def verdict(ok: bool) -> str:
    """Return the check cell for a target."""
    return "OK" if ok else "MISSED"


def chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Yield `items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- environment -------------------------------------------------------------------------


def environment(database_url: str, redis_url: str, tmp: Path) -> dict[str, str]:
    """The environment an operator sets for the Procfile, production mode, loopback only."""
    return {
        **production_env(database_url, redis_url, tmp / "prometheus"),
        "SPOOL_DIR": str(tmp / "spool"),
        "MAIL_OUTBOX_DIR": str(tmp / "mail"),
    }


def login(base: str, password: str) -> dict[str, str]:
    """Sign in as the admin over HTTP; return the Authorization header."""
    creds = {"email": EMAIL, "password": password, "device_name": "bench-jobs"}
    response = httpx.post(f"{base}/api/v1/auth/login", json=creds, timeout=30, trust_env=False)
    expect(response, 200)
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def wait_for_worker(connection: redis.Redis, deadline: Deadline) -> None:
    """Wait until an RQ worker has registered on `connection`."""
    from rq import Worker

    while Worker.count(connection=connection) < 1:
        deadline.sleep(0.1)


@contextmanager
def running_stack(
    procs: Processes, env: dict[str, str], password: str, label: str, deadline: Deadline
) -> Iterator[Stack]:
    """Start the Procfile's `web` and `worker`, sign in, yield; stop both (whole trees)."""
    from backend.redis_store import client_from_url

    port = free_port()
    web = procs.start_procfile(f"web-{label}", "web", {**env, "PORT": str(port)})
    worker = procs.start_procfile(f"worker-{label}", "worker", env)
    connection = client_from_url(env["REDIS_URL"])
    try:
        base = f"http://{HOST}:{port}"
        wait_until_up(f"{base}/healthz", web, deadline, procs.log_dir / f"web-{label}.log")
        wait_for_worker(connection, deadline)
        yield Stack(base, login(base, password), worker)
    finally:
        connection.close()
        procs.stop(worker, grace=10.0)  # idle by now; a warm shutdown waits for a running job
        procs.stop(web, grace=10.0)


@contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    """Create `bench_jobs_<random>` on the server of `admin_url`, yield its URL, drop it after."""
    import psycopg2

    name = f"bench_jobs_{uuid.uuid4().hex[:10]}"

    def admin_sql(sql: str) -> None:
        connection = psycopg2.connect(admin_url)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        try:
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg2.Error:  # before PostgreSQL 13: no FORCE
            admin_sql(f'DROP DATABASE IF EXISTS "{name}"')


def load_average() -> str:
    """Return the 1/5/15-minute load averages as text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# --- 1. trivial jobs -----------------------------------------------------------------------


def rq_command(pool: bool, redis_url: str) -> list[str]:
    """The burst worker command line: one forking worker, or a pool of two."""
    rq = str(BIN / "rq")
    if pool:
        return [
            rq,
            "worker-pool",
            "-n",
            "2",
            "-w",
            "jobs.worker.Worker",
            "--burst",
            "--url",
            redis_url,
            QUEUE,
        ]
    return [rq, "worker", "--burst", "-w", "jobs.worker.Worker", "--url", redis_url, QUEUE]


def burst(procs: Processes, env: dict[str, str], pool: bool, name: str) -> float:
    """Run a burst worker to the end; return its wall time (spawn to exit)."""
    started = time.monotonic()
    process = procs.start(name, rq_command(pool, env["REDIS_URL"]), env)
    return procs.wait(process, name) - started


def execution_window(connection: redis.Redis, ids: list[str]) -> tuple[int, float]:
    """Jobs ended, and seconds, while every worker of the drain was at work (RQ's data).

    The window opens at the last worker's first `started_at` and closes at the
    first worker's last `ended_at`: a pool's workers start up (interpreter,
    app) and run dry at different moments, and a job rate over the whole
    span would count that stagger. With one worker it is the whole span.
    Raises `RuntimeError` if a job is missing or did not finish.
    """
    from rq.job import Job as RQJob
    from rq.job import JobStatus

    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    ends: list[datetime] = []
    for part in chunks(ids):
        for job in RQJob.fetch_many(part, connection=connection):
            if job is None:
                raise RuntimeError("an RQ job vanished before it could be read")
            status = job.get_status(refresh=False)
            if status != JobStatus.FINISHED or job.started_at is None or job.ended_at is None:
                raise RuntimeError(f"RQ job {job.id} ended {status}, not finished")
            worker = job.worker_name or ""
            first[worker] = min(first.get(worker, job.started_at), job.started_at)
            last[worker] = max(last.get(worker, job.ended_at), job.ended_at)
            ends.append(job.ended_at)
    opens, closes = max(first.values()), min(last.values())
    if len(first) == 1 or closes <= opens:  # one worker, or one did nearly all the work
        opens, closes = min(first.values()), max(last.values())
        return len(ends), (closes - opens).total_seconds()
    return sum(1 for end in ends if opens < end <= closes), (closes - opens).total_seconds()


def record_statuses(ids: list[str]) -> Counter[str]:
    """Count the job records of `ids` by status (a missing record counts as `missing`)."""
    from backend.models import Job

    found: Counter[str] = Counter()
    for part in chunks(ids):
        found.update(str(job.status) for job in Job.select(Job.status).where(Job.id.in_(part)))
    found["missing"] = len(ids) - sum(found.values())
    return +found


def add(drains: dict[tuple[str, bool], Drain], key: tuple[str, bool], drain: Drain) -> None:
    """Add one round's drain to the running total for `key`."""
    total = drains.get(key)
    drains[key] = (
        drain
        if total is None
        else Drain(
            total.jobs + drain.jobs,
            total.wall + drain.wall,
            total.steady_jobs + drain.steady_jobs,
            total.span + drain.span,
        )
    )


def trivial_jobs(
    procs: Processes, env: dict[str, str], admin: User, n: int, notes: list[str]
) -> list[Line]:
    """Part 1: drain N raw and N tracked no-op jobs, single worker then pool.

    Each worker kind drains them in `ROUNDS` alternating rounds (raw first, then tracked
    first, ...), so that the machine drifting during the run weighs on both sides alike.
    """
    from rq import Queue

    from backend.db import db
    from backend.redis_store import get_redis
    from backend.services.job_tracking import submit
    from bench.jobs_tasks import raw_noop

    connection = get_redis()
    queue = Queue(QUEUE, connection=connection)
    if queue.count:
        raise RuntimeError(f"queue {QUEUE!r} holds {queue.count} jobs: use an idle Redis")
    startup = {pool: burst(procs, env, pool, f"empty-{pool}") for pool in (False, True)}
    notes.append(
        "start-up of an empty burst (interpreter + create_app + Redis registration): "
        f"rq worker {startup[False]:.2f} s, rq worker-pool -n 2 {startup[True]:.2f} s"
    )
    per_round = max(1, n // ROUNDS)
    enqueue_times: dict[str, float] = {"one": 0.0, "many": 0.0, "tracked": 0.0}
    drains: dict[tuple[str, bool], Drain] = {}
    round_ratios: dict[bool, list[float]] = {False: [], True: []}
    tracked_ids: list[str] = []

    def drain_raw(pool: bool, label: str) -> Drain:
        started = time.perf_counter()
        if pool:  # the baseline for submit(): one job at a time
            ids = [queue.enqueue(raw_noop).id for _ in range(per_round)]
        else:
            prepared = [Queue.prepare_data(raw_noop) for _ in range(per_round)]
            ids = [j.id for j in queue.enqueue_many(prepared)]
        enqueue_times["one" if pool else "many"] += time.perf_counter() - started
        wall = burst(procs, env, pool, f"raw-{label}")
        return Drain(per_round, wall, *execution_window(connection, ids))

    def drain_tracked(pool: bool, label: str) -> Drain:
        started = time.perf_counter()
        with db.connection_context():  # closed again before the drain, as in production
            ids = [submit(owner=admin, kind="bench.noop", func=TRACKED_NOOP).id
                   for _ in range(per_round)]  # fmt: skip
        enqueue_times["tracked"] += time.perf_counter() - started
        wall = burst(procs, env, pool, f"tracked-{label}")
        tracked_ids.extend(ids)
        return Drain(per_round, wall, *execution_window(connection, ids))

    for pool in (False, True):
        for i in range(ROUNDS):
            label = f"{'pool' if pool else 'single'}-{i}"
            if i % 2 == 0:
                raw, tracked = drain_raw(pool, label), drain_tracked(pool, label)
            else:
                tracked, raw = drain_tracked(pool, label), drain_raw(pool, label)
            add(drains, ("raw", pool), raw)
            add(drains, ("tracked", pool), tracked)
            round_ratios[pool].append(tracked.steady / raw.steady)

    total = per_round * ROUNDS
    one = total / enqueue_times["one"]
    tracked_enqueue = 2 * total / enqueue_times["tracked"]
    lines = [
        Line(
            "1",
            f"enqueue raw_noop, Queue.enqueue_many ({total})",
            f"{total / enqueue_times['many']:,.0f} jobs/s",
        ),
        Line("1", f"enqueue raw_noop, Queue.enqueue one at a time ({total})", f"{one:,.0f} jobs/s"),
        Line(
            "1",
            f"enqueue tracked_noop, jobs.submit() ({2 * total}: Job row + enqueue)",
            f"{tracked_enqueue:,.0f} jobs/s",
            f"Queue.enqueue {one:,.0f}/s",
            f"{tracked_enqueue / one:.2f}x",
        ),
    ]
    for pool, label, anchor in (
        (False, "rq worker --burst", ANCHOR_SINGLE),
        (True, "rq worker-pool -n 2 --burst", ANCHOR_POOL),
    ):
        raw, tracked = drains["raw", pool], drains["tracked", pool]
        ratio = tracked.steady / raw.steady
        rounds = " / ".join(f"{r:.2f}" for r in round_ratios[pool])
        lines += [
            Line(
                "1",
                f"run raw_noop, {label} (jobs.worker.Worker)",
                f"{raw.steady:.1f} jobs/s (wall incl. start-up {raw.with_startup:.1f})",
                f"anchor {anchor}/s",
            ),
            Line(
                "1",
                f"run tracked_noop, {label} (jobs.worker.Worker)",
                f"{tracked.steady:.1f} jobs/s (wall incl. start-up {tracked.with_startup:.1f})",
                f"raw {raw.steady:.1f}/s",
                f"{ratio:.2f}x (rounds {rounds}), target >= {RATIO_TARGET}: "
                f"{verdict(ratio >= RATIO_TARGET)}",
            ),
        ]
    with db.connection_context():
        statuses = record_statuses(tracked_ids)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    lines.append(
        Line(
            "1",
            "tracked job records after the drains",
            summary,
            f"{len(tracked_ids)} submitted",
            verdict(statuses == Counter(succeeded=len(tracked_ids))),
        )
    )
    return lines


# --- 2. progress latency -------------------------------------------------------------------


class EventClient(threading.Thread):
    """An SSE connection read on a thread; each event is stamped with `time.time_ns()`."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.changed = threading.Condition()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0), trust_env=False)

    def run(self) -> None:
        """Read frames until the connection closes."""
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self.status = response.status_code
                self.ready.set()  # headers come after the stream subscribed
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                        continue
                    received = time.time_ns()
                    if "event" in fields and "data" in fields:
                        with self.changed:
                            self.events.append(
                                (received, fields["event"], json.loads(fields["data"]))
                            )
                            self.changed.notify_all()
                    fields = {}
        except BaseException as exc:  # noqa: BLE001 - closing the client ends the read
            self.error = exc
        finally:
            self.ready.set()
            with self.changed:
                self.changed.notify_all()

    def wait_for(self, test: Callable[[str, dict[str, Any]], bool], deadline: float) -> bool:
        """Wait until an event passes `test` (True) or `deadline` (monotonic) passes (False)."""
        with self.changed:
            while not any(test(event, data) for _, event, data in self.events):
                left = deadline - time.monotonic()
                if left <= 0 or not self.is_alive():
                    return False
                self.changed.wait(min(left, 1.0))
            return True

    def close(self) -> None:
        """Close the connection (ends `run`)."""
        self._client.close()


def percentile(samples: list[float], p: int) -> float:
    """Return the p-th percentile (inclusive method)."""
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def progress_latency(stack: Stack, admin: User, deadline: Deadline) -> list[Line]:
    """Part 2: latency of `job.progress` events from `progress()` to an SSE client."""
    from backend.db import db
    from backend.services.job_tracking import submit

    client = EventClient(f"{stack.base}/api/v1/events", stack.headers)
    client.start()
    try:
        if not client.ready.wait(min(15.0, deadline.remaining())) or client.status != 200:
            raise RuntimeError(f"GET /api/v1/events answered {client.status}: {client.error!r}")
        with db.connection_context():
            job_id = submit(
                owner=admin,
                kind="bench.progress",
                func="bench.jobs_tasks.progress_ticker",
                args=(PROGRESS_STEPS, PROGRESS_INTERVAL),
            ).id
        limit = time.monotonic() + min(
            PROGRESS_STEPS * PROGRESS_INTERVAL + 60, deadline.remaining()
        )
        ended = client.wait_for(lambda e, d: e in TERMINAL_EVENTS and d.get("id") == job_id, limit)
        with client.changed:
            events = [(t, e, d) for t, e, d in client.events if d.get("id") == job_id]
    finally:
        client.close()
        client.join(5)
    latencies = [
        (received - int(data["progress"]["message"].removeprefix("t="))) / 1e6
        for received, event, data in events
        if event == "job.progress" and data["progress"]["message"].startswith("t=")
    ]
    terminal = [event for _, event, _ in events if event in TERMINAL_EVENTS]
    if not latencies:
        raise RuntimeError(f"no job.progress event arrived (terminal: {terminal})")
    p99 = percentile(latencies, 99)
    return [
        Line(
            "2",
            f"job.progress -> SSE client, {len(latencies)} events every "
            f"{PROGRESS_INTERVAL * 1000:.0f} ms",
            f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, "
            f"max {max(latencies):.1f} ms",
            "",
            f"p99 <= {P99_TARGET_MS:.0f} ms: {verdict(p99 <= P99_TARGET_MS)}",
        ),
        Line(
            "2",
            "progress events received; terminal event",
            f"{len(latencies)}/{PROGRESS_STEPS}; {', '.join(terminal) or 'none'}",
            "",
            verdict(ended and terminal == ["job.succeeded"] and len(latencies) == PROGRESS_STEPS),
        ),
    ]


# --- 3. import -----------------------------------------------------------------------------


def write_csv(path: Path, rows: int) -> Path:
    """Write a product CSV of `rows` rows (unique skus) to `path`."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("sku,name,description,price,currency,stock\n")
        for n in range(rows):
            out.write(
                f'BENCH-{n:07d},Product {n},"Row {n}, a plain description",'
                f"{n % 900 + 1}.{n % 100:02d},USD,{n % 50}\n"
            )
    return path


class HorseWatch(threading.Thread):
    """Polls the work horses under a worker (children in their own process group): VmHWM."""

    def __init__(self, worker_pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.worker_pid, self.interval = worker_pid, interval
        self.peak_kib = 0
        self.worker_kib = 0
        self.horses: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Poll until stopped; follow one horse until it exits, then look again."""
        while not self._stop_event.is_set():
            horse = next(
                (pid for pid in descendants(self.worker_pid) if process_group(pid) == pid), None
            )
            while horse is not None and not self._stop_event.is_set():
                hwm = status_kib(horse, "VmHWM")
                if hwm is None:
                    break
                self.horses.add(horse)
                self.peak_kib = max(self.peak_kib, hwm)
                self.worker_kib = max(self.worker_kib, status_kib(self.worker_pid, "VmRSS") or 0)
                self._stop_event.wait(self.interval)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """End the polling."""
        self._stop_event.set()
        self.join(5)


def import_csv(
    stack: Stack, csv_path: Path, rows: int, label: str, deadline: Deadline
) -> list[Line]:
    """Part 3: upload the CSV, follow the job, watch the horse's memory."""
    watch = HorseWatch(stack.worker.pid)
    watch.start()
    try:
        with httpx.Client(
            base_url=stack.base, headers=stack.headers, timeout=120, trust_env=False
        ) as client:
            with csv_path.open("rb") as handle:
                files = {"file": ("products.csv", handle, "text/csv")}
                job_id = expect(client.post("/api/v1/products/import", files=files), 202).json()[
                    "id"
                ]
            while True:
                job = expect(client.get(f"/api/v1/jobs/{job_id}"), 200).json()
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    break
                deadline.sleep(0.25)
    finally:
        watch.stop()
    if job["status"] != "succeeded":
        raise RuntimeError(f"the {label} import ended {job['status']}: {job['error']}")
    seconds = (
        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    ).total_seconds()
    result = job["result"]
    imported = result["created"] + result["updated"]
    return [
        Line(
            "3",
            f"import {rows:,} rows, {label} (POST /products/import)",
            f"{rows / seconds:,.0f} rows/s ({seconds:.1f} s)",
            "",
            f"{imported:,} imported, {result['failed']} failed: "
            f"{verdict(imported == rows and result['failed'] == 0)}",
        ),
        Line(
            "3",
            f"peak work-horse RSS (VmHWM), {label}",
            f"{watch.peak_kib / 1024:.1f} MiB",
            f"worker parent RSS {watch.worker_kib / 1024:.1f} MiB",
            f"{len(watch.horses)} horse(s) seen" if watch.horses else "no horse seen: MISSED",
        ),
    ]


# --- report --------------------------------------------------------------------------------


def report(header: list[str], lines: list[Line], notes: list[str]) -> None:
    """Print the header, the aligned table and the notes."""
    table = [["#", "measurement", "result", "baseline / reference", "check"]]
    table += [[x.part, x.what, x.result, x.reference, x.check] for x in lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for text in header:
        print(text)
    for i, cells in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for note in notes:
        print(f"- {note}")
    sys.stdout.flush()


def attempt(lines: list[Line], part: str, what: str, step: Callable[[], list[Line]]) -> None:
    """Run one part; a failure (other than the timeout) becomes a FAILED row, then go on."""
    try:
        lines += step()
    except TimeoutError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the table, the other parts still run
        message = " ".join(str(exc).split())[:300]
        lines.append(Line(part, what, f"FAILED: {type(exc).__name__}: {message}", "", "FAILED"))


def on_signal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into an exit that runs the clean-up."""
    raise SystemExit(f"bench/jobs.py: stopped by signal {signum}")


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="trivial jobs per drain")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the import CSV")
    parser.add_argument("--postgres", metavar="URL", help="also import on PostgreSQL (admin URL)")
    parser.add_argument("--skip-import", action="store_true", help="skip part 3")
    parser.add_argument("--timeout", type=float, default=1800, help="overall limit in seconds")
    args = parser.parse_args()
    if args.jobs < 2 or args.rows < 1:
        parser.error("--jobs must be at least 2 and --rows at least 1")
    return args


def main_database(
    procs: Processes,
    env: dict[str, str],
    password: str,
    csv_path: Path | None,
    args: argparse.Namespace,
    db_kind: str,
    lines: list[Line],
    notes: list[str],
) -> None:
    """Parts 1, 2 and 3 on the main database (SQLite unless `DATABASE_URL`)."""
    from backend import create_app
    from backend.db import db
    from backend.models import User

    deadline = procs.deadline
    prepare_database(env, EMAIL, password, deadline)
    names = (*APP_CONFIG, "SPOOL_DIR")
    app: Flask = create_app({name: env[name] for name in names})
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the app's logging set it to INFO
    with app.app_context():
        with db.connection_context():
            admin = User.get(User.email == EMAIL)
        attempt(
            lines, "1", "trivial jobs", lambda: trivial_jobs(procs, env, admin, args.jobs, notes)
        )
        with running_stack(procs, env, password, "main", deadline) as stack:
            attempt(
                lines, "2", "job.progress latency", lambda: progress_latency(stack, admin, deadline)
            )
            if csv_path is not None:
                attempt(
                    lines,
                    "3",
                    f"import, {db_kind}",
                    lambda: import_csv(stack, csv_path, args.rows, db_kind, deadline),
                )


def postgres_import(
    procs: Processes,
    admin_url: str,
    redis_url: str,
    password: str,
    csv_path: Path,
    args: argparse.Namespace,
    lines: list[Line],
) -> None:
    """Part 3 on a throwaway PostgreSQL database (created, migrated, dropped)."""
    label = "PostgreSQL (throwaway db)"
    tmp = procs.log_dir.parent
    with throwaway_postgres(admin_url) as url:
        env = environment(url, redis_url, tmp)
        prepare_database(env, EMAIL, password, procs.deadline)
        with running_stack(procs, env, password, "postgres", procs.deadline) as stack:
            attempt(
                lines,
                "3",
                f"import, {label}",
                lambda: import_csv(stack, csv_path, args.rows, label, procs.deadline),
            )


def main() -> int:
    """Set up, run the three parts, print the table; always clean up."""
    import rq

    args = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    deadline = Deadline(args.timeout)
    load_before = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    procs = Processes(deadline, tmp / "logs")
    lines: list[Line] = []
    notes: list[str] = []
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    db_kind = "SQLite (temporary file)" if database_url.startswith("sqlite") else "DATABASE_URL"
    redis_kind = "?"
    failure: BaseException | None = None
    try:
        with embedded_redis_if_needed() as (redis_url, redis_kind):
            password = secrets.token_urlsafe(15)
            env = environment(database_url, redis_url, tmp)
            csv_path = None if args.skip_import else write_csv(tmp / "products.csv", args.rows)
            main_database(procs, env, password, csv_path, args, db_kind, lines, notes)
            if args.postgres and csv_path is not None:
                postgres_import(procs, args.postgres, redis_url, password, csv_path, args, lines)
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        failure = exc
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    notes += [
        "jobs/s = jobs ended / seconds while every worker of a drain was at work (RQ's "
        "started_at/ended_at: last worker's first start -> first worker's last end): start-up, "
        "app creation, the first fork and a pool's staggered start excluded; "
        "'wall incl. start-up' = N / (spawn -> exit)",
        "latency = SSE frame received (client time.time_ns()) - time.time_ns() taken in the "
        "job just before progress(); same machine clock",
        "no database connection is held by this script while workers run (as in production: "
        "on SQLite each horse is then the only connection)",
        "horse RSS = max VmHWM of the worker's child in its own process group (setpgrp), "
        "polled every 50 ms; it includes pages shared with the forking parent",
    ]
    header = [
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, rq {rq.__version__}; "
        f"load average (1/5/15 min) before {load_before}, after {load_average()}",
        f"config: {db_kind}{' + PostgreSQL throwaway db' if args.postgres else ''}, "
        f"{redis_kind}, gunicorn gevent workers=2 (Procfile web), ENV=production, "
        f"jobs={args.jobs}, rows={args.rows:,}",
    ]
    report(header, lines, notes)
    if failure is not None:
        print(f"bench/jobs.py: aborted: {type(failure).__name__}: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
