"""Upload URLs against the production web process: a multi-MiB raw PUT with no headers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import processes as procs
from tests.support.accounts import PASSWORD, make_user

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
SIZE = 64 * MIB  # the worker grows by a few MiB of buffers, whatever the size
PDF_HEAD = b"%PDF-1.7\n"


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def body(seed: bytes, size: int = SIZE) -> Iterator[bytes]:
    """A PDF-looking body of `size` bytes made 1 MiB at a time (never whole in memory)."""
    yield PDF_HEAD
    left = size - len(PDF_HEAD)
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    while left > 0:
        yield block[:left]
        left -= len(block)


@pytest.fixture
def web(
    app: object, database_url: str, redis_url: str, tmp_path: Path,
    processes: Callable[..., procs.Process],
) -> tuple[str, int, dict[str, str]]:  # fmt: skip
    """One gunicorn worker (so its memory can be read), the base URL and a user's headers."""
    make_user("ada@example.test")
    port = procs.free_port()
    env = {**procs.procfile_environment(database_url, redis_url, port), "WEB_CONCURRENCY": "1",
           "FILES_DIR": str(tmp_path / "files"), "FILES_MAX_BYTES": str(2 * SIZE)}  # fmt: skip
    master = processes(["bash", "-c", f"exec {procs.procfile()['web']}"], env)
    base = f"http://127.0.0.1:{port}/api/v1"
    procs.wait_until_up(f"http://127.0.0.1:{port}/healthz")
    token = httpx.post(
        f"{base}/auth/login", json={"email": "ada@example.test", "password": PASSWORD}, timeout=10
    ).json()["access_token"]
    workers = [pid for pid in procs.descendants(master.popen.pid) if "gunicorn" in
               Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]  # fmt: skip
    return base, max(workers), {"Authorization": f"Bearer {token}"}


def upload_url(base: str, headers: dict[str, str], size: int) -> str:
    made = httpx.post(
        f"{base}/files/upload-urls", headers=headers, timeout=10,
        json={"filename": "manual.pdf", "content_type": "application/pdf", "size": size},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return str(made.json()["upload_url"])


def test_a_chunked_put_with_no_headers_is_stored_in_flat_memory(
    web: tuple[str, int, dict[str, str]],
) -> None:
    base, worker, headers = web
    url = upload_url(base, headers, SIZE)
    assert url.startswith("http://127.0.0.1:")
    assert httpx.put(url.rsplit("/", 1)[0] + "/nope", content=b"x", timeout=10).status_code == 403
    warm = httpx.put(upload_url(base, headers, MIB), content=body(b"warm", MIB), timeout=10)
    assert warm.status_code == 201, warm.text  # the first upload loads what uploads use
    before = kib(worker, "VmRSS")
    with open(f"/proc/{worker}/clear_refs", "w") as reset:  # VmHWM := VmRSS
        reset.write("5")
    hashed = hashlib.sha256()
    for block in body(b"seed"):
        hashed.update(block)
    digest = hashed.hexdigest()
    with httpx.Client(headers={}, timeout=60) as client:
        client.headers.clear()  # not even httpx's defaults beyond Host and the framing
        response = client.put(url, content=body(b"seed"))
    assert "authorization" not in response.request.headers
    assert "content-type" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 201, response.text
    stored = response.json()
    assert (stored["size"], stored["sha256"], stored["content_type"]) == (
        SIZE, digest, "application/pdf",
    )  # fmt: skip
    growth_mib = (kib(worker, "VmHWM") - before) / 1024
    assert growth_mib < SIZE / MIB / 4, f"the worker grew {growth_mib:.1f} MiB"
    again = httpx.put(url, content=b"%PDF-1.7\n", timeout=10)
    assert again.status_code == 409
