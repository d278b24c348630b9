"""One S3 bucket through boto3: where it is, its client per process, streamed writes, ranged reads.

The plumbing under `backend.s3_storage`: `Location` (parsed from an `s3://`
`FILES_STORAGE_URL`), `Bucket` (names below a key prefix, a boto3 client per
process, S3 errors translated: `FileNotFoundError` for a missing object,
`StorageUnavailable` when the service is down), `parts_of`/`Parts` (a stream cut
into `PART_SIZE` parts, one buffer each, for one PUT or a multipart upload that is
aborted on any error) and `S3Reader` (ranged GETs in windows that grow from 64 KiB
to 8 MiB, so a `seek` costs no more than what is read after it).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from backend.spool import Readable
from backend.storage import CHUNK, StorageUnavailable, TooLarge

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024  # S3 wants parts of at least 5 MiB (but the last)
FIRST_WINDOW = 64 * 1024  # the first ranged GET of a read; each next one doubles...
MAX_WINDOW = 8 * 1024 * 1024  # ... up to this
DRAIN_LIMIT = 64 * 1024  # a GET body left with less than this is read out, keeping its connection
_UNAVAILABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


@dataclass(frozen=True)
class Location:
    """Where in which S3 service: parsed from an `s3://` `FILES_STORAGE_URL`."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    public_endpoint_url: str | None = None  # presigned URLs for clients, if they see another

    @classmethod
    def from_url(cls, url: str) -> Location:
        """Parse `s3://bucket[/prefix]?endpoint_url=...&region=...&public_endpoint_url=...`.

        Raises `ValueError` for another scheme, a missing bucket or an unknown parameter.
        """
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket URL: {url!r}")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint_url", "region", "public_endpoint_url"}
        if unknown:
            raise ValueError(f"unknown FILES_STORAGE_URL parameters: {', '.join(sorted(unknown))}")
        prefix = parts.path.strip("/")
        return cls(
            bucket=parts.netloc, prefix=f"{prefix}/" if prefix else "",
            endpoint_url=query.get("endpoint_url"), region=query.get("region"),
            public_endpoint_url=query.get("public_endpoint_url"),
        )  # fmt: skip


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise `FileNotFoundError` for a missing object, `StorageUnavailable` when S3 is down."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(str(exc)) from exc
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable"):
            raise StorageUnavailable(f"object storage: {exc}") from exc
        raise
    except _UNAVAILABLE as exc:
        raise StorageUnavailable(f"object storage unreachable: {exc}") from exc


class Bucket:
    """A bucket (and key prefix) with a boto3 client per process.

    A forked process (an RQ work horse, a gunicorn worker) builds its own
    client rather than share the parent's pooled connections.
    """

    def __init__(
        self, location: Location, *, access_key: str | None = None, secret_key: str | None = None
    ) -> None:
        self.location = location
        self.name = location.bucket
        self._access_key = access_key
        self._secret_key = secret_key
        self._clients: dict[tuple[int, str | None], S3Client] = {}
        self._lock = threading.Lock()

    def key(self, name: str) -> str:
        """Return the bucket key of `name` (below the prefix)."""
        return f"{self.location.prefix}{name}"

    @property
    def client(self) -> S3Client:
        """This process's client."""
        return self._client(self.location.endpoint_url)

    @property
    def public_client(self) -> S3Client:
        """The client that signs URLs for clients (`public_endpoint_url`, else the usual one)."""
        return self._client(self.location.public_endpoint_url or self.location.endpoint_url)

    def _client(self, endpoint_url: str | None) -> S3Client:
        slot = (os.getpid(), endpoint_url)
        with self._lock:
            if slot not in self._clients:
                self._clients = {k: v for k, v in self._clients.items() if k[0] == slot[0]}
                self._clients[slot] = boto3.client(
                    "s3", endpoint_url=endpoint_url, region_name=self.location.region,
                    config=Config(
                        s3={"addressing_style": "path" if endpoint_url else "auto"},
                        signature_version="s3v4", connect_timeout=5, read_timeout=60,
                        retries={"max_attempts": 3, "mode": "standard"},
                        max_pool_connections=50,
                    ),
                    aws_access_key_id=self._access_key, aws_secret_access_key=self._secret_key,
                )  # fmt: skip
            return self._clients[slot]

    def ensure_exists(self) -> bool:
        """Create the bucket if it is missing; return whether it had to be created."""
        with translated():
            try:
                self.client.head_bucket(Bucket=self.name)
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
                    raise
                self.client.create_bucket(Bucket=self.name)
                return True
        return False

    def names(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """Yield `(name below the prefix, last modified)` of every object under `prefix`."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.key(prefix)
        )
        with translated():
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.location.prefix) :], item["LastModified"]

    def delete(self, name: str) -> None:
        """Delete an object if it exists."""
        with translated():
            self.client.delete_object(Bucket=self.name, Key=self.key(name))

    def exists(self, name: str) -> bool:
        """Return whether the object exists."""
        try:
            self.size(name)
        except FileNotFoundError:
            return False
        return True

    def size(self, name: str) -> int:
        """Return the object's size. Raises `FileNotFoundError`."""
        with translated():
            found = self.client.head_object(Bucket=self.name, Key=self.key(name))
        return int(found["ContentLength"])

    def copy(self, source: str, target: str) -> None:
        """Copy an object inside the bucket (server side; objects up to 5 GiB)."""
        with translated():
            self.client.copy_object(
                Bucket=self.name, Key=self.key(target),
                CopySource={"Bucket": self.name, "Key": self.key(source)},
            )  # fmt: skip

    def open(self, name: str) -> IO[bytes]:
        """Open an object for reading (buffered ranged GETs). Raises `FileNotFoundError`."""
        return io.BufferedReader(S3Reader(self, self.key(name)), buffer_size=FIRST_WINDOW)

    def write(self, name: str, parts: Parts) -> None:
        """Write the object `name` from `parts`: one PUT if they fit in one, else multipart.

        Every part but the last must hold `PART_SIZE` bytes. Any error while
        the parts are read or sent aborts the upload: nothing is left. A part
        is let go once sent.
        """
        key = self.key(name)
        with translated():
            if parts.fit_in_one():
                body = _blob(next(parts, bytearray()))
                self.client.put_object(Bucket=self.name, Key=key, Body=body)
                return
            upload = self.client.create_multipart_upload(Bucket=self.name, Key=key)["UploadId"]
            try:
                done: list[CompletedPartTypeDef] = []
                for number, part in enumerate(parts, start=1):
                    if part:
                        sent = self.client.upload_part(
                            Bucket=self.name, Key=key, UploadId=upload, PartNumber=number,
                            Body=_blob(part),
                        )  # fmt: skip
                        done.append({"PartNumber": number, "ETag": sent["ETag"]})
                self.client.complete_multipart_upload(
                    Bucket=self.name, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload)
                raise

    def abort_uploads(self, prefix: str, *, before: datetime) -> int:
        """Abort multipart uploads under `prefix` started before `before`; return how many."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.name, Prefix=self.key(prefix)
        )
        aborted = 0
        with translated():
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < before:
                        self.client.abort_multipart_upload(
                            Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        return aborted


def parts_of(
    source: Readable, *, max_bytes: int | None = None, digest: Any | None = None
) -> Iterator[bytearray]:
    """Yield `source` as `PART_SIZE` parts and a last, shorter (maybe empty) one.

    Hashes into `digest` on the way; raises `TooLarge` past `max_bytes`. Each
    part is filled in place (one buffer per part, no regrowing), so a part costs
    its size in memory and one read more.
    """
    part, filled, size = bytearray(PART_SIZE), 0, 0
    for chunk in iter(lambda: source.read(CHUNK), b""):
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise TooLarge(max_bytes)
        if digest is not None:
            digest.update(chunk)
        with memoryview(chunk) as rest:
            while rest:
                taken = min(len(rest), PART_SIZE - filled)
                part[filled : filled + taken] = rest[:taken]
                filled, rest = filled + taken, rest[taken:]
                if filled == PART_SIZE:
                    yield part
                    part, filled = bytearray(PART_SIZE), 0
    del part[filled:]
    yield part


def _blob(part: bytearray) -> bytes:
    """A part as a request body: botocore sends any bytes-like object, no copy needed.

    (Its stubs say `bytes`; copying each 8 MiB part to `bytes` would double its memory.)
    """
    return cast(bytes, part)


class Parts:
    """The parts of a source (`parts_of`), able to tell whether they fit in one.

    Looking ahead holds at most two parts, each let go as it is handed out.
    """

    def __init__(self, parts: Iterator[bytearray]) -> None:
        self._parts = parts
        self._ahead: list[bytearray] = []

    def fit_in_one(self) -> bool:
        """Return whether there is one part (maybe followed by an empty last one)."""
        while len(self._ahead) < 2 and (part := next(self._parts, None)) is not None:
            self._ahead.append(part)
        return len(self._ahead) < 2 or not self._ahead[1]

    def __iter__(self) -> Parts:
        return self

    def __next__(self) -> bytearray:
        return self._ahead.pop(0) if self._ahead else next(self._parts)


class S3Reader(io.RawIOBase):
    """A seekable reader of one object: ranged GETs of growing windows, streamed.

    Opening fetches the first window (which finds the size, or raises
    `FileNotFoundError`); each next window doubles, up to `MAX_WINDOW`. A seek
    elsewhere drops the current body and the next read fetches from there.
    """

    def __init__(self, bucket: Bucket, key: str) -> None:
        super().__init__()
        self._bucket = bucket
        self._key = key
        self._pos = 0
        self._body: Any = None
        self._body_end = 0
        self._window = FIRST_WINDOW
        self.size = -1
        self._fetch()

    def readable(self) -> bool:
        """Objects can be read."""
        return True

    def seekable(self) -> bool:
        """Reads can start anywhere."""
        return True

    def tell(self) -> int:
        """Return the position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position; the next read fetches from there."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        target = max(base + offset, 0)
        if target != self._pos:
            self._drop_body()
            self._pos = target
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Read into `buffer` from the current window, fetching the next one when it ran out."""
        if self._pos >= self.size or not len(buffer):
            return 0
        if self._body is None or self._pos >= self._body_end:
            self._drop_body()
            self._fetch()
        with translated():
            data = self._body.read(min(len(buffer), self._body_end - self._pos))
        if not data:
            raise OSError(f"object storage ended {self._key} early at byte {self._pos}")
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _fetch(self) -> None:
        end = self._pos + self._window - 1
        if self.size >= 0:
            end = min(end, self.size - 1)
        with translated():
            try:
                answer = self._bucket.client.get_object(
                    Bucket=self._bucket.name, Key=self._key, Range=f"bytes={self._pos}-{end}"
                )
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "InvalidRange" or self._pos:
                    raise
                self.size = 0  # an empty object has no byte 0
                return
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        self.size = int(total) if total.isdigit() else int(answer["ContentLength"])
        self._body = answer["Body"]
        self._body_end = self._pos + int(answer["ContentLength"])
        self._window = min(self._window * 2, MAX_WINDOW)

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is None:
            return
        with contextlib.suppress(Exception):
            if self._body_end - self._pos <= DRAIN_LIMIT:
                body.read()  # the connection goes back to the pool
            body.close()

    def close(self) -> None:
        """Drop the current GET, then close."""
        self._drop_body()
        super().close()
