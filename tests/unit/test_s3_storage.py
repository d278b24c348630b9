"""The S3 storage and spool on a real SeaweedFS: multipart streaming, aborts, ranged reads."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from typing import Any

import botocore.exceptions
import pytest

from backend.s3_bucket import MAX_WINDOW, PART_SIZE, Bucket, Location, translated
from backend.s3_storage import S3Spool, S3Storage
from backend.storage import Download, StorageUnavailable, TooLarge
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, S3Store, SeaweedFS


def bucket_of(store: S3Store) -> Bucket:
    return Bucket(Location.from_url(store.url), access_key=ACCESS_KEY, secret_key=SECRET_KEY)


@pytest.fixture
def storage(s3_store: S3Store) -> S3Storage:
    return S3Storage(bucket_of(s3_store))


class Generated:
    """`size` pseudo-random bytes read in pieces, never all in memory; calls `at` once midway."""

    def __init__(self, size: int, *, at: int | None = None, then: object = None) -> None:
        self.size, self.sent, self.at, self.then = size, 0, at, then
        self.digest = hashlib.sha256()
        self._block = os.urandom(64 * 1024)

    def read(self, size: int = -1, /) -> bytes:
        if self.at is not None and self.sent >= self.at and callable(self.then):
            then, self.then = self.then, None
            then()
        count = min(len(self._block) if size < 0 else size, len(self._block), self.size - self.sent)
        chunk = self._block[:count]
        self.sent += count
        self.digest.update(chunk)
        return chunk


def test_a_small_object_is_one_put_content_addressed(storage: S3Storage, s3_store: S3Store) -> None:
    stored = storage.put(io.BytesIO(b"hello"))
    assert stored.key == hashlib.sha256(b"hello").hexdigest()
    assert stored.size == 5
    key = stored.key
    assert s3_store.object_names() == [f"{key[:2]}/{key[2:4]}/{key}"]
    assert storage.exists(key)
    assert storage.size(key) == 5
    assert storage.local_path(key) is None
    assert list(storage.keys()) == [key]
    with storage.open(key) as handle:
        assert handle.read() == b"hello"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # twice is fine
    with pytest.raises(FileNotFoundError):
        storage.open(key)
    with pytest.raises(FileNotFoundError):
        storage.size(key)


def test_a_large_object_is_streamed_in_parts_then_moved_to_its_key(
    storage: S3Storage, s3_store: S3Store
) -> None:
    seen: dict[str, object] = {}

    def look_at_the_bucket() -> None:  # while part 3 is being read from the source
        client = s3_store.client()
        [pending] = s3_store.client().list_multipart_uploads(
            Bucket=s3_store.bucket, Prefix=s3_store.prefix
        )["Uploads"]
        parts = client.list_parts(
            Bucket=s3_store.bucket, Key=pending["Key"], UploadId=pending["UploadId"]
        )
        seen["key"] = pending["Key"]
        seen["parts"] = [p["Size"] for p in parts.get("Parts", [])]

    size = 3 * PART_SIZE + 12345  # four parts
    source = Generated(size, at=2 * PART_SIZE + 1, then=look_at_the_bucket)
    stored = storage.put(source, max_bytes=size)
    assert (stored.key, stored.size) == (source.digest.hexdigest(), size)
    assert str(seen["key"]).startswith(f"{s3_store.prefix}/incoming/")
    # Parts 1 and 2 were sent before part 3 was read: two parts in memory at most.
    assert seen["parts"] == [PART_SIZE, PART_SIZE]
    key = stored.key
    assert s3_store.object_names() == [f"{key[:2]}/{key[2:4]}/{key}"], "the upload is gone"
    assert s3_store.pending_uploads() == []
    digest = hashlib.sha256()
    with storage.open(key) as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == key


def test_a_source_of_whole_parts_ends_with_no_empty_part(storage: S3Storage) -> None:
    source = Generated(2 * PART_SIZE)
    stored = storage.put(source)
    assert (stored.key, storage.size(stored.key)) == (source.digest.hexdigest(), 2 * PART_SIZE)


def test_too_large_leaves_no_object_and_no_pending_upload(
    storage: S3Storage, s3_store: S3Store
) -> None:
    with pytest.raises(TooLarge):
        storage.put(Generated(3 * PART_SIZE), max_bytes=2 * PART_SIZE + 10)
    with pytest.raises(TooLarge):
        storage.put(Generated(PART_SIZE // 2), max_bytes=100)
    assert s3_store.object_names() == []
    assert s3_store.pending_uploads() == []


def test_a_source_failing_midway_leaves_nothing(storage: S3Storage, s3_store: S3Store) -> None:
    def fail() -> None:
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        storage.put(Generated(3 * PART_SIZE, at=PART_SIZE + 5, then=fail))
    assert s3_store.object_names() == []
    assert s3_store.pending_uploads() == []


def test_ranged_reads_across_windows_and_seeks(storage: S3Storage) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    key = storage.put(io.BytesIO(content)).key
    with storage.open(key) as handle:
        assert handle.read(10) == content[:10]
        for start, length in [(0, 70_000), (65_530, 20), (1_000_000, 300_000), (len(content) - 5,
                              100), (123, 1)]:  # fmt: skip
            assert handle.seek(start) == start
            assert handle.read(length) == content[start : start + length]
        handle.seek(-3, io.SEEK_END)
        assert handle.read() == content[-3:]
        assert handle.read() == b""
        handle.seek(0)
        assert handle.read() == content
        assert handle.tell() == len(content)
        handle.seek(10**9)
        assert handle.read(5) == b""
    assert MAX_WINDOW >= PART_SIZE  # whole-file reads go in windows of at least a part


def test_an_empty_object_reads_empty(storage: S3Storage) -> None:
    key = storage.put(io.BytesIO(b"")).key
    with storage.open(key) as handle:
        assert handle.read() == b""
    assert storage.size(key) == 0


def test_purge_incoming_aborts_what_a_killed_process_left(
    storage: S3Storage, s3_store: S3Store
) -> None:
    client = s3_store.client()
    left = f"{s3_store.prefix}/incoming/{uuid.uuid4().hex}"
    client.create_multipart_upload(Bucket=s3_store.bucket, Key=left)
    client.put_object(Bucket=s3_store.bucket, Key=left + "-object", Body=b"x")
    assert storage.purge_incoming(older_than_seconds=3600) == 0
    time.sleep(1.1)  # timestamps have second precision
    assert storage.purge_incoming(older_than_seconds=0) == 2
    assert s3_store.pending_uploads() == []
    assert s3_store.object_names() == []


def test_a_presigned_url_serves_the_object_with_the_download_headers(storage: S3Storage) -> None:
    import httpx

    key = storage.put(io.BytesIO(b"a,b\n1,2\n")).key
    download = Download("text/csv", 'attachment; filename="a.csv"', "private, no-cache")
    url = storage.download_url(key, download=download, expires_in=60)
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200
    assert answer.content == b"a,b\n1,2\n"
    assert answer.headers["content-type"] == "text/csv"
    assert answer.headers["content-disposition"] == 'attachment; filename="a.csv"'
    assert answer.headers["cache-control"] == "private, no-cache"
    part = httpx.get(url, headers={"Range": "bytes=2-4"}, timeout=10)
    assert (part.status_code, part.content) == (206, b"b\n1")


def test_the_spool_keeps_named_inputs_in_the_bucket(s3_store: S3Store) -> None:
    spool = S3Spool(bucket_of(s3_store))
    big = spool.write(Generated(PART_SIZE + 10), suffix=".csv")
    small = spool.write(io.BytesIO(b"sku\n"), suffix=".csv")
    assert big.endswith(".csv")
    assert s3_store.object_names("spool/") == sorted([f"spool/{big}", f"spool/{small}"])
    with spool.open(small) as handle:
        assert handle.read() == b"sku\n"
    copied = spool.copy(small)
    assert copied != small
    assert spool.exists(copied)
    spool.delete(small)
    assert not spool.exists(small)
    with pytest.raises(FileNotFoundError):
        spool.copy(small)
    with pytest.raises(ValueError, match="spool name"):
        spool.open("../../etc/passwd")
    assert list(S3Storage(spool.bucket).keys()) == [], "inputs are not stored files"
    assert spool.purge(older_than_seconds=3600) == 0
    time.sleep(1.1)
    assert spool.purge(older_than_seconds=0) == 2
    assert s3_store.object_names() == []


def test_an_unreachable_store_is_storage_unavailable(s3_store: S3Store) -> None:
    from tests.support.processes import free_port

    dead = S3Store(f"http://127.0.0.1:{free_port()}", s3_store.bucket, s3_store.prefix)
    storage = S3Storage(bucket_of(dead))
    with pytest.raises(StorageUnavailable):
        storage.put(io.BytesIO(b"x"))
    with pytest.raises(StorageUnavailable):
        storage.open("0" * 64)


def test_a_missing_bucket_is_created(seaweedfs: SeaweedFS) -> None:
    store = S3Store(seaweedfs.endpoint_url, f"made-{uuid.uuid4().hex[:8]}", "p")
    bucket = bucket_of(store)
    assert bucket.ensure_exists() is True
    assert bucket.ensure_exists() is False
    store.client().delete_bucket(Bucket=store.bucket)
    stranger = Bucket(Location.from_url(store.url), access_key=ACCESS_KEY, secret_key="wrong")
    with pytest.raises(botocore.exceptions.ClientError):  # refused, not missing: nothing made
        stranger.ensure_exists()


@pytest.mark.parametrize(
    ("code", "status", "raised"),
    [("NoSuchKey", 404, FileNotFoundError), ("SlowDown", 503, StorageUnavailable),
     ("InternalError", 500, StorageUnavailable), ("AccessDenied", 403,
                                                  botocore.exceptions.ClientError)],
)  # fmt: skip
def test_store_errors_are_translated(code: str, status: int, raised: type[Exception]) -> None:
    answer: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    with pytest.raises(raised), translated():
        raise botocore.exceptions.ClientError(answer, "GetObject")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://media", Location("media")),
        ("s3://media/a/b/?region=eu-west-1", Location("media", "a/b/", region="eu-west-1")),
        ("s3://m?endpoint_url=http://h:1&public_endpoint_url=https://cdn",
         Location("m", endpoint_url="http://h:1", public_endpoint_url="https://cdn")),
    ],
)  # fmt: skip
def test_locations_are_parsed_from_the_url(url: str, expected: Location) -> None:
    assert Location.from_url(url) == expected


@pytest.mark.parametrize("url", ["s3:///nobucket", "http://bucket", "s3://b?endpoint=x"])
def test_bad_locations_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="s3|unknown"):
        Location.from_url(url)
