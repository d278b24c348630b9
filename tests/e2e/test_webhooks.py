"""Webhooks against the Procfile's processes: a worker SIGKILLed mid-delivery loses nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

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
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 5  # long enough for the worker to be killed while the receiver holds it
LEASE_SECONDS = 7


@pytest.fixture
def env(app: object, database_url: str, redis_url: str) -> dict[str, str]:
    make_user("root@example.test", role="admin")
    return {
        **procfile_environment(database_url, redis_url, 0),
        "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "1",  # the receiver is on 127.0.0.1
        "WEBHOOKS_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "WEBHOOKS_LEASE_SECONDS": str(LEASE_SECONDS),
        "WEBHOOKS_SWEEP_INTERVAL_SECONDS": "1",
    }


def deliveries(base: str, headers: dict[str, str], webhook: int) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/webhooks/{webhook}/deliveries", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def test_a_delivery_whose_worker_was_killed_mid_send_arrives_with_the_same_id(
    env: dict[str, str], processes: Callable[..., Process], webhook_receiver: Receiver
) -> None:
    port = free_port()
    processes(["bash", "-c", f"exec {procfile()['web']}"], {**env, "PORT": str(port)})
    worker = processes(["bash", "-c", f"exec {procfile()['worker']}"], env)
    base = f"http://127.0.0.1:{port}/api/v1"
    wait_until_up(f"http://127.0.0.1:{port}/healthz")
    login = {"email": "root@example.test", "password": PASSWORD}
    token = httpx.post(f"{base}/auth/login", json=login, timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"url": webhook_receiver.url, "events": ["*"]}
    made = httpx.post(f"{base}/webhooks", json=body, headers=headers, timeout=10).json()
    webhook_receiver.secret = made["secret"]
    webhook_receiver.mode = "hang"

    test = httpx.post(f"{base}/webhooks/{made['id']}/test", headers=headers, timeout=10)
    assert test.status_code == 202, test.text
    (held,) = webhook_receiver.wait_for(1, timeout=30)  # the work horse is waiting on it
    assert held.verified
    assert descendants(worker.popen.pid), "the dispatcher should run in a work horse"
    kill_tree(worker.popen.pid)  # the worker and its horse, mid-send
    worker.popen.wait(timeout=10)
    webhook_receiver.mode = "ok"
    webhook_receiver.release()

    processes(["bash", "-c", f"exec {procfile()['cron']}"], env)
    processes(["bash", "-c", f"exec {procfile()['worker']}"], env)
    first, again = webhook_receiver.wait_for(2, timeout=60)[:2]
    assert again.webhook_id == first.webhook_id == test.json()["webhook_id"]
    assert again.verified
    assert again.body == first.body
    deadline = time.monotonic() + 20
    while (log := deliveries(base, headers, made["id"]))[0]["status"] != "succeeded":
        assert time.monotonic() < deadline, log
        time.sleep(0.2)
    assert (log[0]["attempts"], log[0]["response_status"]) == (2, 200)
    assert len(webhook_receiver.received) == 2  # at least once, and here exactly twice
