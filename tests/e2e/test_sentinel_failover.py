"""A Redis failover under the Procfile's web, worker and cron, found through sentinels.

The stack runs in production mode with only the operator's environment, `REDIS_SENTINELS`
pointing at a real master, replica and three sentinels (and `REDIS_URL` at a port nothing
listens on: the sentinels take precedence). Traffic flows over HTTP while the master is
SIGKILLed. No request may fail with a 500; 503s are allowed until the sentinels promote
the replica, and within a bounded time after that every request succeeds again. The open
event stream ends and resumes with `Last-Event-ID` on the new master without a
`stream.reset` (the replica had the history), the hub delivers live events again, and
jobs enqueued after the failover (by a request and by cron) run on the same worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry

from tests.support import processes as procs
from tests.support.accounts import PASSWORD, make_user
from tests.support.sentinel import MASTER_NAME, SentinelCluster
from tests.support.sse import Frame, LiveStream

pytestmark = pytest.mark.slow

RECOVERY_BOUND = 10.0  # seconds after the promotion by which every request must succeed again
REAP_INTERVAL = 2  # cron enqueues the reaper this often: it keeps talking to Redis


@dataclass
class Traffic:
    """Authenticated requests in a loop on a thread, each outcome recorded with its time."""

    base: str
    headers: dict[str, str]
    product_id: int
    outcomes: list[tuple[float, str, int | str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=10) as client:
            while not self.stop.is_set():
                for method, path, body in (
                    ("GET", "/api/v1/users/me", None),
                    ("GET", "/api/v1/orders", None),
                    ("GET", f"/api/v1/products/{self.product_id}", None),
                    ("POST", "/api/v1/orders", {"items": [{"product_id": self.product_id,
                                                           "quantity": 1}]}),
                ):  # fmt: skip
                    try:
                        status: int | str = client.request(method, path, json=body).status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    self.outcomes.append((time.monotonic(), f"{method} {path}", status))
                time.sleep(0.05)

    def failures_after(self, moment: float) -> list[tuple[float, str, int | str]]:
        return [o for o in self.outcomes if o[0] > moment and o[2] not in (200, 201)]


def login(base: str, email: str) -> dict[str, str]:
    response = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def retry_until_ok(call: Callable[[], httpx.Response], timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code < 300 or time.monotonic() > deadline:
            assert response.status_code != 500, response.text
            return response
        assert response.status_code == 503, response.text
        time.sleep(0.1)


def next_order(stream: LiveStream, order_id: int, timeout: float = 15.0) -> Frame:
    """The `order.created` event of `order_id`; others may come first, a `stream.reset` not.

    (An order placed while Redis was away may be committed, answered 503 and never
    announced, or announced and then answered 503: both are skipped here.)
    """
    deadline = time.monotonic() + timeout
    while True:
        frame = stream.next_event(timeout=max(0.1, deadline - time.monotonic()))
        assert frame is not None, f"the stream ended before order {order_id} was announced"
        assert frame.event != "stream.reset", "history was lost"
        if frame.event == "order.created" and frame.json["id"] == order_id:
            return frame


def open_stream(base: str, headers: dict[str, str], timeout: float = 20.0) -> LiveStream:
    """Open `GET /events` as a client would: again (after the SSE retry) while it answers 503."""
    deadline = time.monotonic() + timeout
    while True:
        stream = LiveStream(f"{base}/api/v1/events", headers)
        if stream.status == 200 or time.monotonic() > deadline:
            assert stream.status == 200, f"stream answered {stream.status}"
            return stream
        assert stream.status == 503
        stream.close()
        time.sleep(0.5)


def place_order(base: str, headers: dict[str, str], product_id: int) -> dict[str, Any]:
    body = {"items": [{"product_id": product_id, "quantity": 1}]}
    response = retry_until_ok(
        lambda: httpx.post(f"{base}/api/v1/orders", json=body, headers=headers, timeout=10)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def stack_env(
    app: object, database_url: str, redis_sentinel: SentinelCluster, tmp_path: Path
) -> dict[str, str]:
    make_user("root@example.test", role="admin")
    make_user("ada@example.test")
    make_user("bob@example.test")
    env = procs.procfile_environment(database_url, f"redis://127.0.0.1:{procs.free_port()}/0", 0)
    return {
        **env,
        "REDIS_SENTINELS": redis_sentinel.sentinels_env,
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
        "WEB_CONCURRENCY": "1",
        "JOBS_REAP_INTERVAL_SECONDS": str(REAP_INTERVAL),
        "FILES_DIR": str(tmp_path / "files"),
        "SPOOL_DIR": str(tmp_path / "spool"),
        "REDIS_FAILOVER_WAIT_SECONDS": "30",
    }


def start(processes: Callable[..., procs.Process], env: dict[str, str]) -> dict[str, Any]:
    port = procs.free_port()
    env = {**env, "PORT": str(port)}
    lines = procs.procfile()
    started = {name: processes(["bash", "-c", f"exec {lines[name]}"], env)
               for name in ("web", "worker", "cron")}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    procs.wait_until_up(f"{base}/healthz")
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    started["worker"].wait_for_line("Listening on")
    started["cron"].wait_for_line("Successfully registered")
    return {"base": base, **started}


def test_a_master_failover_is_ridden_out_by_web_worker_cron_and_streams(
    stack_env: dict[str, str], redis_sentinel: SentinelCluster,
    processes: Callable[..., procs.Process],
) -> None:  # fmt: skip
    stack = start(processes, stack_env)
    base: str = stack["base"]
    root, ada, bob = (login(base, f"{n}@example.test") for n in ("root", "ada", "bob"))
    product = httpx.post(
        f"{base}/api/v1/products", headers=root, timeout=10,
        json={"sku": "FAIL-1", "name": "Failover", "price": "1.00", "stock": 100000},
    )  # fmt: skip
    assert product.status_code == 201, product.text
    product_id = int(product.json()["id"])

    stream = open_stream(base, ada)
    before = place_order(base, ada, product_id)
    seen = next_order(stream, before["id"])
    master = redis_sentinel.master_address()
    assert master is not None
    assert redis.Redis(*master).wait(1, 5000) == 1  # the replica has everything so far

    traffic = Traffic(base, bob, product_id)
    pump = threading.Thread(target=traffic.run, daemon=True)
    pump.start()
    time.sleep(1.0)  # some traffic before
    killed_at = time.monotonic()
    old = redis_sentinel.kill_master()
    new = redis_sentinel.wait_for_failover(old)
    promoted_at = time.monotonic()

    assert stream.next_event(timeout=10) is None  # the hub lost Redis: the stream ended
    stream.close()
    after = place_order(base, ada, product_id)  # published on the new master
    resumed = open_stream(base, {**ada, "Last-Event-ID": str(seen.id)})
    try:
        next_order(resumed, after["id"])  # replayed from the new master's copy of the history
        live = place_order(base, ada, product_id)
        next_order(resumed, live["id"])  # and live again
    finally:
        resumed.close()

    deadline = promoted_at + RECOVERY_BOUND
    while time.monotonic() < deadline and traffic.failures_after(time.monotonic() - 2.0):
        time.sleep(0.2)
    time.sleep(1.0)
    traffic.stop.set()
    pump.join(timeout=15)
    statuses = {status for _, _, status in traffic.outcomes}
    assert statuses <= {200, 201, 503}, sorted(map(str, statuses))  # never a 500
    late = traffic.failures_after(promoted_at + RECOVERY_BOUND)
    assert not late, late[:5]
    assert not [o for o in traffic.outcomes if o[0] < killed_at and o[2] not in (200, 201)]
    last_failure = max((t for t, _, s in traffic.outcomes if s == 503), default=killed_at)
    print(  # the timings, for the CI log (pytest -s or -rP)
        f"failover: promoted {promoted_at - killed_at:.1f}s after the kill; last 503 "
        f"{last_failure - killed_at:.1f}s after it; "
        f"{sum(s == 503 for _, _, s in traffic.outcomes)} of {len(traffic.outcomes)} were 503"
    )

    export = retry_until_ok(
        lambda: httpx.post(f"{base}/api/v1/orders/export", json={}, headers=ada, timeout=10)
    )
    assert export.status_code == 202, export.text
    job_id = export.json()["id"]
    job = retry_until_ok(lambda: httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=ada, timeout=10))
    deadline = time.monotonic() + 30
    while job.json()["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=ada, timeout=10)
    assert job.json()["status"] == "succeeded", job.json()

    assert_cron_enqueued_after(new, promoted_at, killed_at)
    assert stack["worker"].popen.poll() is None
    assert stack["cron"].popen.poll() is None


def assert_cron_enqueued_after(new: tuple[str, int], promoted_at: float, killed_at: float) -> None:
    """A reaper job cron enqueued after the failover ran on the worker."""
    connection = redis.Redis(*new)
    wall_promoted = time.time() - (time.monotonic() - promoted_at)
    deadline = time.monotonic() + 3 * REAP_INTERVAL + 10
    while True:
        ids = FinishedJobRegistry("high", connection=connection).get_job_ids()
        jobs = [job for job in Job.fetch_many(ids, connection=connection) if job is not None]
        ran = [
            job for job in jobs
            if job.enqueued_at is not None and job.enqueued_at.timestamp() > wall_promoted
            and job.get_status() == JobStatus.FINISHED
        ]  # fmt: skip
        if ran or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ran, f"no reaper job enqueued after the failover ran ({len(jobs)} finished in all)"
