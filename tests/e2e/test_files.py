"""Files against real processes: gunicorn + an RQ worker from the Procfile, over HTTP and SSE."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from PIL import Image

from backend.db import db
from backend.models import Order, OrderLine, User
from tests.support import processes as procs
from tests.support.accounts import PASSWORD, make_user
from tests.support.catalog import make_product
from tests.support.files import image_bytes
from tests.support.sse import LiveStream
from tests.support.storage import stored_keys

pytestmark = pytest.mark.slow

ORDERS = 10_000
LIMIT = 5 * 1024 * 1024


@pytest.fixture
def stack(
    app: object, database_url: str, redis_url: str, tmp_path: Path,
    processes: Callable[..., procs.Process], storage_settings: dict[str, str],
) -> tuple[str, dict[str, str]]:  # fmt: skip
    """The Procfile's web and worker, on the test's store (S3 for `both_stores` tests)."""
    make_user("root@example.test", role="admin")
    port = procs.free_port()
    env = {**procs.procfile_environment(database_url, redis_url, port),
           "FILES_DIR": str(tmp_path / "files"), "FILES_MAX_BYTES": str(LIMIT),
           **storage_settings}  # fmt: skip
    processes(["bash", "-c", f"exec {procs.procfile()['web']}"], env)
    processes(["bash", "-c", f"exec {procs.procfile()['worker']}"], env)
    procs.wait_until_up(f"http://127.0.0.1:{port}/healthz")
    base = f"http://127.0.0.1:{port}/api/v1"
    token = httpx.post(
        f"{base}/auth/login", json={"email": "root@example.test", "password": PASSWORD}, timeout=10
    ).json()["access_token"]
    return base, {"Authorization": f"Bearer {token}"}


def job_events(events: LiveStream, job_id: str, timeout: float = 60) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    while (frame := events.next_event(timeout=timeout)) is not None:
        data = frame.json
        if frame.event and frame.event.startswith("job.") and data.get("id") == job_id:
            seen.append((frame.event, data))
            if frame.event != "job.progress":
                break
    return seen


@pytest.mark.both_stores  # on S3 the worker reads the original from, and writes to, the bucket
def test_upload_renditions_and_conditional_downloads(
    stack: tuple[str, dict[str, str]], app: Flask
) -> None:
    base, headers = stack
    events = LiveStream(f"{base}/events", headers)
    try:
        original = image_bytes((2400, 1600), fmt="JPEG", quality=90)
        created = httpx.post(
            f"{base}/files", headers=headers, timeout=30,
            files={"file": ("holiday.jpg", original, "image/jpeg")},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        file_id, job_id = created.json()["id"], created.json()["rendition_job_id"]
        seen = job_events(events, job_id)
    finally:
        events.close()
    assert seen[-1][0] == "job.succeeded", seen
    assert any(kind == "job.progress" for kind, _ in seen)
    info = httpx.get(f"{base}/files/{file_id}", headers=headers, timeout=10).json()
    assert set(info["variants"]) == {"thumb", "mobile", "desktop"}
    content = f"{base}/files/{file_id}/content"
    for name, variant in info["variants"].items():
        full = httpx.get(f"{content}?variant={name}", headers=headers, timeout=10)
        assert full.status_code == 200
        assert full.headers["content-type"] == "image/webp"
        etag = full.headers["etag"]
        assert etag == f'"{variant["sha256"]}"'
        with Image.open(io.BytesIO(full.content)) as image:
            assert max(image.size) == {"thumb": 160, "mobile": 640, "desktop": 1600}[name]
        again = httpx.get(f"{content}?variant={name}", headers={**headers, "If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        part = httpx.get(f"{content}?variant={name}", headers={**headers, "Range": "bytes=10-99"})
        assert part.status_code == 206
        assert part.content == full.content[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(full.content)}"
    whole = httpx.get(content, headers=headers, timeout=10)
    assert whole.content == original
    assert whole.headers["content-length"] == str(len(original))
    by_width = httpx.get(f"{content}?w=500", headers=headers, timeout=10)
    assert by_width.headers["etag"] == f'"{info["variants"]["mobile"]["sha256"]}"'
    renditions = {variant["sha256"] for variant in info["variants"].values()}
    assert set(stored_keys(app)) == {info["sha256"], *renditions}, "all in the test's store"


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(
    stack: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, headers = stack
    big = tmp_path / "big.csv"
    with big.open("wb") as out:
        out.write(b"a,b\n")
        for _ in range(LIMIT // (1024 * 1024) + 1):
            out.write(b"1,2\n" * (256 * 1024))
    with big.open("rb") as handle:
        response = httpx.post(
            f"{base}/files", headers=headers, timeout=30,
            files={"file": ("big.csv", handle, "text/csv")},
        )  # fmt: skip
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        yield b"Content-Type: text/csv\r\n\r\na,b\n"
        for _ in range(LIMIT // (1024 * 1024) + 2):
            yield b"1,2\n" * (256 * 1024)
        yield b"\r\n--b--\r\n"

    streamed = httpx.post(
        f"{base}/files", headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
        content=chunked(), timeout=30,
    )  # fmt: skip
    assert streamed.status_code == 413, streamed.text
    stored = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert stored == []
    assert httpx.get(f"{base}/files", headers=headers, timeout=10).json() == []


def add_orders(count: int) -> None:
    users = [make_user(f"buyer{n}@example.test") for n in range(5)]
    product = make_product("BULK-1", price="3.50", stock=0)
    with db.atomic():
        for start in range(0, count, 1000):
            orders = [
                {
                    "user": users[n % 5].id,
                    "currency": "USD",
                    "total": Decimal("7.00"),
                    "status": "pending",
                    "note": '=HYPERLINK("x")' if n == 0 else "",
                }  # fmt: skip
                for n in range(start, min(start + 1000, count))
            ]
            Order.insert_many(orders).execute()
        ids = [order.id for order in Order.select(Order.id)]
        for start in range(0, count, 1000):
            OrderLine.insert_many(
                {"order": order_id, "product": product.id, "sku": "BULK-1", "name": "Bulk",
                 "unit_price": Decimal("3.50"), "quantity": 2, "line_total": Decimal("7.00")}
                for order_id in ids[start : start + 1000]
            ).execute()  # fmt: skip
    assert User.select().count() == 6


def test_exporting_ten_thousand_orders_reports_progress(
    stack: tuple[str, dict[str, str]],
) -> None:
    base, headers = stack
    add_orders(ORDERS)
    events = LiveStream(f"{base}/events", headers)
    try:
        started = httpx.post(f"{base}/orders/export", headers=headers, json={}, timeout=10)
        assert started.status_code == 202, started.text
        seen = job_events(events, started.json()["id"], timeout=120)
    finally:
        events.close()
    kinds = [kind for kind, _ in seen]
    assert kinds[-1] == "job.succeeded", kinds
    done = [data["progress"]["done"] for kind, data in seen if kind == "job.progress"]
    assert len(done) >= 2
    assert done == sorted(done)
    assert done[-1] <= ORDERS
    result = seen[-1][1]["result"]
    assert result["orders"] == ORDERS
    assert result["rows"] == ORDERS
    download = httpx.get(f"{base}/files/{result['file_id']}/content", headers=headers, timeout=60)
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) == ORDERS
    assert rows[0]["note"] == '\'=HYPERLINK("x")'
    assert {r["sku"] for r in rows} == {"BULK-1"}
