"""Live events against running gunicorn processes, an RQ worker and the CLI, over HTTP only."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest
import redis

from backend.config import PROJECT_ROOT
from backend.redis_store import POOL_SIZE
from tests.support import processes as procs
from tests.support.accounts import PASSWORD, make_user
from tests.support.sse import LiveStream

pytestmark = pytest.mark.slow


def start_web(
    processes: Callable[..., procs.Process], env: dict[str, str], port: int, workers: int = 2
) -> str:
    command = procs.procfile()["web"]
    processes(
        ["bash", "-c", f"exec {command}"],
        {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)},
    )
    base = f"http://127.0.0.1:{port}"
    procs.wait_until_up(f"{base}/healthz")
    return base


def bearer(base: str, email: str) -> dict[str, str]:
    response = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def stack(
    app: object, database_url: str, redis_url: str, processes: Callable[..., procs.Process]
) -> dict[str, object]:
    make_user("root@example.test", role="admin")
    make_user("ada@example.test")
    env = procs.procfile_environment(database_url, redis_url, 0)
    return {"env": env, "processes": processes, "redis_url": redis_url}


def test_events_from_a_request_a_job_and_the_cli_reach_subscribers(
    stack: dict[str, object],
) -> None:
    env: dict[str, str] = stack["env"]  # type: ignore[assignment]
    processes: Callable[..., procs.Process] = stack["processes"]  # type: ignore[assignment]
    base = start_web(processes, env, procs.free_port())
    processes(["bash", "-c", f"exec {procs.procfile()['worker']}"], env)
    root = bearer(base, "root@example.test")
    me = httpx.get(f"{base}/api/v1/users/me", headers=root, timeout=5).json()
    stream = LiveStream(f"{base}/api/v1/events?topics=products,admin", root)
    try:
        assert stream.status == 200
        created = httpx.post(
            f"{base}/api/v1/products",
            json={"sku": "E2E", "name": "Live", "price": "1.00", "stock": 2},
            headers=root,
            timeout=5,
        )
        assert created.status_code == 201
        event = stream.next_event()
        assert event is not None
        assert (event.event, event.json["sku"]) == ("product.created", "E2E")
        copy = stream.next_event()  # admins get every product event on `admin` too
        assert copy is not None
        assert (copy.event, copy.json) == (event.event, event.json)

        script = (
            "from backend import create_app\n"
            "from backend.queues import enqueue\n"
            "from jobs.notifications import notify_user\n"
            "with create_app().app_context():\n"
            f"    enqueue(notify_user, {me['id']}, 'hello', 'From a job')\n"
        )
        subprocess.run(  # enqueued here, run by the Procfile's worker
            [str(procs.BIN / "python"), "-c", script],
            env=env,
            cwd=PROJECT_ROOT,
            check=True,
            timeout=60,
        )
        event = stream.next_event(timeout=20)
        while event is not None and event.event != "notification.created":
            event = stream.next_event(timeout=20)  # e.g. an admin copy of a product event
        assert event is not None
        assert event.json["title"] == "From a job"

        subprocess.run(
            [str(procs.BIN / "flask"), "--app", "wsgi", "publish-event", "admin", "maintenance",
             '{"in": 5}'],
            env=env, cwd=PROJECT_ROOT, check=True, timeout=60, capture_output=True,
        )  # fmt: skip
        event = stream.next_event()
        assert event is not None
        assert (event.event, event.json) == ("maintenance", {"in": 5})
    finally:
        stream.close()


def test_two_instances_share_events_and_revocation(stack: dict[str, object]) -> None:
    env: dict[str, str] = stack["env"]  # type: ignore[assignment]
    processes: Callable[..., procs.Process] = stack["processes"]  # type: ignore[assignment]
    first = start_web(processes, env, procs.free_port())
    second = start_web(processes, env, procs.free_port())
    root = bearer(first, "root@example.test")
    ada = bearer(first, "ada@example.test")
    listener = LiveStream(f"{second}/api/v1/events?topics=products", ada)
    try:
        httpx.post(
            f"{first}/api/v1/products",
            json={"sku": "X-1", "name": "Across", "price": "2.00"},
            headers=root,
            timeout=5,
        )
        event = listener.next_event()
        assert event is not None
        assert event.json["sku"] == "X-1"
        # ada signs out on the first instance: her stream on the second one ends
        assert httpx.post(f"{first}/api/v1/auth/logout", headers=ada, timeout=5).status_code == 204
        assert listener.next_event(timeout=10) is None
    finally:
        listener.close()


def test_replay_over_http_after_a_disconnect(stack: dict[str, object]) -> None:
    env: dict[str, str] = stack["env"]  # type: ignore[assignment]
    processes: Callable[..., procs.Process] = stack["processes"]  # type: ignore[assignment]
    base = start_web(processes, env, procs.free_port())
    root = bearer(base, "root@example.test")
    stream = LiveStream(f"{base}/api/v1/events?topics=products", root)
    httpx.post(f"{base}/api/v1/products", json={"sku": "R-0", "name": "r", "price": "1.00"},
               headers=root, timeout=5)  # fmt: skip
    seen = stream.next_event()
    stream.close()
    assert seen is not None
    for n in range(1, 101):
        httpx.post(f"{base}/api/v1/products", json={"sku": f"R-{n}", "name": "r", "price": "1.00"},
                   headers=root, timeout=5)  # fmt: skip
    resumed = LiveStream(
        f"{base}/api/v1/events?topics=products", {**root, "Last-Event-ID": str(seen.id)}
    )
    try:
        skus = []
        for _ in range(100):
            event = resumed.next_event()
            assert event is not None
            skus.append(event.json["sku"])
        assert skus == [f"R-{n}" for n in range(1, 101)]
    finally:
        resumed.close()


def open_raw_streams(
    port: int, headers: dict[str, str], count: int, batch: int = 100
) -> list[socket.socket]:
    """Open `count` event streams, `batch` at a time, each read up to its first `retry:`."""
    request = (
        f"GET /api/v1/events?topics=products HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {headers['Authorization']}\r\n\r\n"
    ).encode()
    sockets: list[socket.socket] = []
    while len(sockets) < count:
        opened = []
        for _ in range(min(batch, count - len(sockets))):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            opened.append(sock)
        for sock in opened:
            received = b""
            while b"retry:" not in received:
                chunk = sock.recv(4096)
                assert chunk, f"stream {len(sockets)} closed early after {received[:300]!r}"
                received += chunk
            sockets.append(sock)
    return sockets


def test_redis_connections_stay_flat_from_1_to_1000_streams(stack: dict[str, object]) -> None:
    env: dict[str, str] = stack["env"]  # type: ignore[assignment]
    processes: Callable[..., procs.Process] = stack["processes"]  # type: ignore[assignment]
    port = procs.free_port()
    base = start_web(processes, env, port, workers=1)
    ada = bearer(base, "ada@example.test")
    server = redis.Redis.from_url(str(stack["redis_url"]))

    def connected() -> int:
        return int(server.info("clients")["connected_clients"])

    one = open_raw_streams(port, ada, 1)
    time.sleep(0.5)
    with_one = connected()
    many = open_raw_streams(port, ada, 999)
    time.sleep(0.5)
    with_thousand = connected()
    for sock in one + many:
        sock.close()
    # A bounded pool plus the hub's two connections, however many streams.
    assert with_thousand - with_one <= POOL_SIZE, (with_one, with_thousand)
    print(f"redis connections: {with_one} with 1 stream, {with_thousand} with 1000")
