"""nginx in front of two web instances: shared events and files, draining, a rolling restart.

One stack for the module, in production mode with only the operator's environment: nginx
(Debian's, with `deploy/nginx.conf` rendered for the test's ports: `tests.support.nginx`),
two instances of the Procfile's `web:` line (instance A and B, one gunicorn worker each),
two `worker:` processes and one `cron:`, on PostgreSQL, the machine's Redis and S3 files
(SeaweedFS). Each instance runs under a loop that starts it again when it exits, as systemd
does, so that `deploy/rolling-restart.sh` restarts it with a SIGTERM. The tests run in
order: events and files first, then one instance drained by hand, then the rolling restart.

PostgreSQL only (CI's PostgreSQL leg runs it): the other legs have no PostgreSQL server.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image

from backend import create_app
from backend.config import PROJECT_ROOT
from backend.db import db
from backend.redis_store import client_from_url
from tests.support import databases
from tests.support import processes as procs
from tests.support.accounts import PASSWORD, make_user
from tests.support.catalog import make_product
from tests.support.files import image_bytes
from tests.support.nginx import Nginx, nginx_binary, start_nginx
from tests.support.seaweedfs import S3Store, SeaweedFS
from tests.support.sse import Frame, LiveStream, ResumingStream

NGINX = nginx_binary()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="several instances share PostgreSQL (DATABASE_URL): CI's PostgreSQL leg",
    ),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: nginx-light)"),
]
API = "/api/v1"
RESTART_SCRIPT = PROJECT_ROOT / "deploy" / "rolling-restart.sh"


@dataclass
class Instance:
    """One web instance (the Procfile's `web:` line on its port), started again when it exits."""

    port: int
    pidfile: Path
    process: procs.Process

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def master_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = 30) -> int:
        """Wait for a master that answers `/readyz` 200; return its pid."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.master_pid()
            try:
                if pid and httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return pid
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "".join(self.process.output[-40:])
            time.sleep(0.2)


@dataclass
class Stack:
    """The running processes and what the tests sign in with."""

    nginx: Nginx
    a: Instance
    b: Instance
    admin: dict[str, str]
    ada: dict[str, str]
    product_id: int
    store: S3Store
    files_dir: Path


def seed(database_url: str, redis_url: str, files: dict[str, str]) -> int:
    """The accounts and a product, written straight to the database; the product's id."""
    app = create_app({"TESTING": True, "ENV": "development", "DATABASE_URL": database_url,
                      "REDIS_URL": redis_url, **files})  # fmt: skip
    with app.app_context():
        make_user("root@example.test", role="admin")
        make_user("ada@example.test")
        product_id = int(make_product("NGINX-1", stock=1_000_000).id)
        db.close()
    return product_id


def login(base: str, email: str) -> dict[str, str]:
    response = httpx.post(
        f"{base}{API}/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def start_stack(
    workdir: Path, env: dict[str, str], started: list[procs.Process]
) -> tuple[Nginx, Instance, Instance]:
    """Two instances, two workers and cron, then nginx in front of the instances."""
    lines = procs.procfile()
    instances = []
    for _ in range(2):
        port = procs.free_port()
        pidfile = workdir / f"web-{port}.pid"
        # A graceful timeout no loaded CI machine outlasts: the draining test holds an upload
        # across its checks, and the worker must not be killed under it.
        args = f"--pid {pidfile} --graceful-timeout 60"
        instance_env = {**env, "PORT": str(port), "GUNICORN_CMD_ARGS": args}
        loop = f"while :; do {lines['web']}; sleep 0.1; done"  # systemd's Restart=always
        process = procs.Process(["bash", "-c", loop], instance_env, background=True)
        started.append(process)
        instances.append(Instance(port, pidfile, process))
    for name in ("worker", "worker", "cron"):
        started.append(procs.Process(["bash", "-c", f"exec {lines[name]}"], env, background=True))
    for instance in instances:
        instance.wait_ready()
    assert NGINX is not None
    ports = [i.port for i in instances]
    nginx = start_nginx(NGINX, workdir / "nginx", ports, Path(env["FILES_DIR"]))
    started.append(nginx.process)
    return nginx, instances[0], instances[1]


@pytest.fixture(scope="module")
def stack(
    test_database: databases.TestDatabase, redis_server: str, seaweedfs: SeaweedFS,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:  # fmt: skip
    workdir = tmp_path_factory.mktemp("nginx-stack")
    database_url = test_database.fresh_url(workdir)
    redis = client_from_url(redis_server)
    redis.flushdb()
    redis.close()
    store = seaweedfs.store()
    files = {"FILES_DIR": str(workdir / "files"), "SPOOL_DIR": str(workdir / "spool"),
             **store.settings()}  # fmt: skip
    product_id = seed(database_url, redis_server, files)
    env = {**procs.procfile_environment(database_url, redis_server, 0), **files,
           "WEB_CONCURRENCY": "1", "PROXY_FIX_X_FOR": "1", "SSE_RETRY_MS": "1000",
           "RATELIMIT_WRITES": "100000/minute"}  # fmt: skip
    started: list[procs.Process] = []
    try:
        nginx, a, b = start_stack(workdir, env, started)
        yield Stack(nginx, a, b, login(a.base, "root@example.test"),
                    login(a.base, "ada@example.test"), product_id, store,
                    Path(files["FILES_DIR"]))  # fmt: skip
    finally:
        for process in started:
            procs.kill_tree(process.popen.pid)
            process.popen.wait()


def next_of(stream: LiveStream, event: str, timeout: float = 10) -> Frame:
    """The next `event` on the stream (others may come first)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = stream.next_event(timeout=max(0.1, deadline - time.monotonic()))
        assert frame is not None, f"the stream ended before a {event}"
        if frame.event == event:
            return frame


def set_stock(base: str, stack: Stack, stock: int) -> None:
    url = f"{base}{API}/products/{stack.product_id}"
    etag = httpx.get(url, headers=stack.admin, timeout=10).headers["ETag"]
    changed = httpx.patch(url, json={"stock": stock}, timeout=10,
                          headers={**stack.admin, "If-Match": etag})  # fmt: skip
    assert changed.status_code == 200, changed.text


def test_an_event_published_through_one_instance_reaches_a_stream_on_the_other(
    stack: Stack,
) -> None:
    for publisher, reader, stock in ((stack.a, stack.b, 777), (stack.b, stack.a, 778)):
        stream = LiveStream(f"{reader.base}{API}/events?topics=products", stack.ada)
        try:
            assert stream.status == 200
            set_stock(publisher.base, stack, stock)
            assert next_of(stream, "product.updated").json["stock"] == stock
        finally:
            stream.close()


def upload(base: str, headers: dict[str, str], content: bytes) -> int:
    files = {"file": ("picture.png", content, "image/png")}
    response = httpx.post(f"{base}{API}/files", files=files, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def download(base: str, headers: dict[str, str], file_id: int, query: str = "") -> bytes:
    response = httpx.get(f"{base}{API}/files/{file_id}/content{query}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def test_a_file_uploaded_through_one_instance_downloads_through_the_other(stack: Stack) -> None:
    content = image_bytes((1200, 800), color="navy")
    file_id = upload(stack.a.base, stack.ada, content)
    assert download(stack.b.base, stack.ada, file_id) == content
    assert download(stack.nginx.base, stack.ada, file_id) == content
    through_nginx = image_bytes((900, 600), color="teal")
    other_id = upload(stack.nginx.base, stack.ada, through_nginx)  # streamed, unbuffered
    for instance in (stack.a, stack.b):
        assert download(instance.base, stack.ada, other_id) == through_nginx
    # The bytes are in the object store, not on a disk of one instance.
    assert stack.store.object_names(), "nothing in the bucket"
    files_dir = stack.files_dir
    assert not files_dir.exists() or not [p for p in files_dir.rglob("*") if p.is_file()]
    # A worker (either) made the renditions, on S3 too: B serves the thumbnail.
    deadline = time.monotonic() + 30
    url = f"{stack.b.base}{API}/files/{file_id}"
    while "thumb" not in (httpx.get(url, headers=stack.ada, timeout=10).json()["variants"] or {}):
        assert time.monotonic() < deadline, "no thumbnail"
        time.sleep(0.3)
    thumb = download(stack.b.base, stack.ada, file_id, "?variant=thumb")
    with Image.open(io.BytesIO(thumb)) as image:
        assert max(image.size) < 1200


class HeldUpload(threading.Thread):
    """`POST /files` whose body stops after its first bytes until `release` is set."""

    def __init__(self, base: str, headers: dict[str, str], content: bytes) -> None:
        super().__init__(daemon=True)
        boundary = uuid.uuid4().hex
        self.body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="held.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        self.url = f"{base}{API}/files"
        self.headers = {**headers, "Content-Length": str(len(self.body)),
                        "Content-Type": f"multipart/form-data; boundary={boundary}"}  # fmt: skip
        self.started, self.release = threading.Event(), threading.Event()
        self.response: httpx.Response | None = None
        self.error: httpx.HTTPError | None = None

    def _body(self) -> Iterator[bytes]:
        yield self.body[:1000]
        self.started.set()
        self.release.wait(30)
        yield self.body[1000:]

    def run(self) -> None:
        try:
            self.response = httpx.post(
                self.url, content=self._body(), headers=self.headers, timeout=60
            )
        except httpx.HTTPError as exc:  # reported by the test's assertion
            self.error = exc


def poll(check: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def refuses_connections(base: str) -> bool:
    try:
        httpx.get(f"{base}/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_a_draining_instance_leaves_readiness_finishes_its_requests_and_ends_its_streams(
    stack: Stack,
) -> None:
    a, content = stack.a, image_bytes((800, 600), color="olive")
    old_pid = a.wait_ready()
    stream = LiveStream(f"{a.base}{API}/events", stack.ada)
    opening = stream.frames.get(timeout=5)
    assert opening is not None
    assert opening.retry == 1000
    upload_ = HeldUpload(a.base, stack.ada, content)
    upload_.start()
    assert upload_.started.wait(10)
    time.sleep(0.5)  # the instance has read the request's head: it is in flight
    prober = httpx.Client(base_url=a.base, timeout=5)  # a balancer's kept-alive connection
    assert prober.get("/readyz").status_code == 200
    os.kill(old_pid, signal.SIGTERM)
    ended_by = time.monotonic() + 10  # promptly: not after the graceful timeout (60 s here)

    readiness: list[httpx.Response] = []

    def draining() -> bool:
        readiness.append(prober.get("/readyz"))
        return readiness[-1].status_code == 503

    poll(draining, 10, "/readyz never said draining")
    assert readiness[-1].json()["error"] == "draining", readiness[-1].text
    assert readiness[-1].json()["errors"] == {"instance": "draining"}
    assert readiness[-1].headers["Connection"] == "close"
    prober.close()

    tail: list[Frame | None] = [stream.frames.get(timeout=5)]
    while tail[-1] is not None:
        tail.append(stream.frames.get(timeout=5))
    assert time.monotonic() < ended_by, "the stream did not end promptly"
    # Events may still come first (the earlier test's second upload gets its renditions
    # meanwhile); the stream's last frame is the hint: no event, when to reconnect.
    hints = [f for f in tail if f is not None and f.event is None]
    assert len(hints) == 1, tail
    hint = tail[-2]
    assert hint is hints[0], tail
    assert hint.retry is not None
    assert 100 <= hint.retry <= 1000

    poll(lambda: refuses_connections(a.base), 10, "the draining instance still accepts")
    os.kill(old_pid, 0)  # still draining: the upload holds it
    assert stack.b.master_pid() is not None
    for _ in range(10):  # nginx sends everything to B meanwhile
        url = f"{stack.nginx.base}{API}/products/{stack.product_id}"
        assert httpx.get(url, timeout=10).status_code == 200

    upload_.release.set()
    upload_.join(30)
    assert upload_.response is not None, upload_.error
    assert upload_.response.status_code == 201, upload_.response.text
    assert upload_.response.headers["Connection"] == "close"  # the proxy's connection moves on
    file_id = int(upload_.response.json()["id"])
    assert download(stack.b.base, stack.ada, file_id) == content
    assert a.wait_ready() != old_pid  # it exited; its loop started it again


@dataclass
class Traffic:
    """Reads and orders (each with its own `Idempotency-Key`) through nginx, in a loop."""

    base: str
    headers: dict[str, str]
    product_id: int
    outcomes: list[tuple[str, int | str]] = field(default_factory=list)
    orders: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        order = {"items": [{"product_id": self.product_id, "quantity": 1}]}
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=15) as client:
            while not self.stop.is_set():
                for method, path, body in (
                    ("GET", f"{API}/products/{self.product_id}", None),
                    ("GET", f"{API}/users/me", None),
                    ("POST", f"{API}/orders", order),
                    ("GET", f"{API}/orders?page_size=5", None),
                ):
                    key = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
                    try:
                        response = client.request(method, path, json=body, headers=key)
                    except httpx.HTTPError as exc:
                        self.outcomes.append((f"{method} {path}", type(exc).__name__))
                        continue
                    self.outcomes.append((f"{method} {path}", response.status_code))
                    if method == "POST" and response.status_code == 201:
                        self.orders.append(int(response.json()["id"]))
                time.sleep(0.02)


def announced_orders(stream: ResumingStream) -> list[int]:
    return [int(f.json["id"]) for f in list(stream.events) if f.event == "order.created"]


def rolling_restart(stack: Stack) -> subprocess.CompletedProcess[str]:
    """`deploy/rolling-restart.sh A B`, restarting each as systemd would: SIGTERM, then again."""
    pidfile = stack.a.pidfile.parent / "web-{port}.pid"
    restart = (f"pid=$(cat {pidfile}) && kill -TERM $pid && "
               "while kill -0 $pid 2>/dev/null; do sleep 0.1; done")  # fmt: skip
    return subprocess.run(
        [str(RESTART_SCRIPT), str(stack.a.port), str(stack.b.port)],
        env={**os.environ, "RESTART_COMMAND": restart}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_a_rolling_restart_through_nginx_loses_no_request_and_no_event(stack: Stack) -> None:
    before = {stack.a.wait_ready(), stack.b.wait_ready()}
    ada = login(stack.nginx.base, "ada@example.test")
    streams = [ResumingStream(f"{stack.nginx.base}{API}/events", ada) for _ in range(2)]
    traffic = [Traffic(stack.nginx.base, ada, stack.product_id) for _ in range(2)]
    pumps = [threading.Thread(target=t.run, daemon=True) for t in traffic]
    for pump in pumps:
        pump.start()
    time.sleep(1.0)
    restarted = rolling_restart(stack)
    time.sleep(1.0)
    for load in traffic:
        load.stop.set()
    for pump in pumps:
        pump.join(timeout=30)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert not before & {stack.a.master_pid(), stack.b.master_pid()}  # both are new processes

    outcomes = [o for load in traffic for o in load.outcomes]
    failed = [o for o in outcomes if o[1] not in (200, 201)]
    assert not failed, (failed[:10], stack.nginx.error_log()[-3000:])
    orders = sorted(o for load in traffic for o in load.orders)
    listed = httpx.get(f"{stack.nginx.base}{API}/orders", headers=ada, timeout=10)
    assert listed.status_code == 200
    assert json.loads(listed.headers["X-Pagination"])["total"] == len(orders)

    deadline = time.monotonic() + 15
    while any(sorted(announced_orders(s)) != orders for s in streams):
        assert time.monotonic() < deadline, "some orders were never announced"
        time.sleep(0.2)
    for stream in streams:
        stream.close()
        assert stream.error is None, stream.error
        assert set(stream.statuses) == {200}, stream.statuses  # no stream refused
        assert 1 <= len(stream.statuses) - 1 <= 2, stream.statuses  # a resume per restart at most
        assert None not in stream.resumed_from[1:]  # every reconnection resumed
        assert "stream.reset" not in {f.event for f in stream.events}
        ids = [f.id for f in stream.events]
        assert len(ids) == len(set(ids))  # no event twice
        assert sorted(announced_orders(stream)) == orders  # and none missed
    retried = [line for line in stack.nginx.access_log() if "upstream=" in line and ", " in line]
    print(  # for the CI log (pytest -rP)
        f"rolling restart: {len(outcomes)} requests ({len(orders)} orders), none failed; "
        f"nginx passed {len(retried)} on to the other instance; streams resumed "
        f"{[len(s.statuses) - 1 for s in streams]} times\n{restarted.stdout}"
    )
