"""Job reliability against real processes: cancelling a running import, a SIGKILLed worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.models import Product
from tests.support.accounts import PASSWORD, make_user
from tests.support.processes import (
    Process,
    descendants,
    free_port,
    kill_tree,
    procfile,
    procfile_environment,
    wait_until_up,
)
from tests.support.sse import LiveStream

pytestmark = pytest.mark.slow

ROWS = 100_000
BATCH = 500


def big_csv(path: Path, rows: int = ROWS) -> Path:
    with path.open("w") as out:
        out.write("sku,name,description,price,currency,stock\n")
        for n in range(rows):
            out.write(f"SKU-{n:06d},Product {n},Row {n},{n % 90 + 1}.25,USD,{n % 7}\n")
    return path


def start_stack(
    processes: Callable[..., Process], env: dict[str, str]
) -> tuple[str, dict[str, str], Process]:
    port = free_port()
    processes(["bash", "-c", f"exec {procfile()['web']}"], {**env, "PORT": str(port)})
    worker = processes(["bash", "-c", f"exec {procfile()['worker']}"], env)
    base = f"http://127.0.0.1:{port}/api/v1"
    wait_until_up(f"http://127.0.0.1:{port}/healthz")
    token = httpx.post(
        f"{base}/auth/login", json={"email": "root@example.test", "password": PASSWORD}, timeout=10
    ).json()["access_token"]
    return base, {"Authorization": f"Bearer {token}"}, worker


def start_import(base: str, headers: dict[str, str], csv: Path) -> str:
    with csv.open("rb") as handle:
        response = httpx.post(
            f"{base}/products/import", files={"file": ("p.csv", handle, "text/csv")},
            headers=headers, timeout=60,
        )  # fmt: skip
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_for(
    base: str, headers: dict[str, str], job_id: str, done: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(f"{base}/jobs/{job_id}", headers=headers, timeout=10).json()
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


@pytest.fixture
def env(app: object, database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    make_user("root@example.test", role="admin")
    return {
        **procfile_environment(database_url, redis_url, 0),
        "SPOOL_DIR": str(tmp_path / "spool"),
        "WORKER_HEARTBEAT_SECONDS": "1",
    }


def test_cancelling_a_running_import_stops_it_between_batches(
    env: dict[str, str], processes: Callable[..., Process], tmp_path: Path
) -> None:
    base, headers, _worker = start_stack(processes, env)
    events = LiveStream(f"{base}/events", headers)
    try:
        job_id = start_import(base, headers, big_csv(tmp_path / "big.csv"))
        running = wait_for(base, headers, job_id, lambda j: j["progress"]["done"] >= 2 * BATCH)
        assert running["status"] == "started", running
        cancel = httpx.post(f"{base}/jobs/{job_id}/cancel", headers=headers, timeout=10).json()
        assert cancel["cancel_requested"] is True
        final = wait_for(base, headers, job_id, lambda j: j["status"] == "cancelled", timeout=30)
        assert final["status"] == "cancelled"
        assert final["progress"]["done"] < ROWS
        terminal = []
        while (frame := events.next_event(timeout=10)) is not None:
            if frame.event and frame.event.startswith("job.") and frame.event != "job.progress":
                terminal.append(frame.event)
                break
        assert terminal == ["job.cancelled"]
    finally:
        events.close()
    count = Product.select().count()
    assert count % BATCH == 0, f"{count} rows: a batch was half applied"
    assert 0 < count < ROWS


def test_a_sigkilled_worker_does_not_lose_the_job(
    env: dict[str, str], processes: Callable[..., Process], tmp_path: Path
) -> None:
    base, headers, worker = start_stack(processes, env)
    job_id = start_import(base, headers, big_csv(tmp_path / "big.csv"))
    wait_for(base, headers, job_id, lambda j: j["progress"]["done"] >= BATCH)
    horses = descendants(worker.popen.pid)
    assert horses, "the import should be running in a work horse"
    kill_tree(worker.popen.pid)  # the worker and its work horse, as a lost machine would
    worker.popen.wait(timeout=10)
    imported = Product.select().count()
    cron = processes(
        ["bash", "-c", f"exec {procfile()['cron']}"], {**env, "JOBS_REAP_INTERVAL_SECONDS": "2"}
    )
    processes(["bash", "-c", f"exec {procfile()['worker']}"], env)  # runs the reaper job
    final = wait_for(base, headers, job_id, lambda j: j["status"] == "failed", timeout=60)
    assert final["status"] == "failed", final
    assert "stopped unexpectedly" in final["error"]
    assert Product.select().count() == imported  # nothing ran on after the kill
    assert imported % BATCH == 0
    assert cron.popen.poll() is None
