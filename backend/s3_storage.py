"""File bytes and spooled job inputs in an S3 bucket (AWS S3, SeaweedFS, MinIO, ...), via boto3.

`FILES_STORAGE_URL=s3://bucket[/prefix]?endpoint_url=http://host:port&region=...`
(credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, else boto3's own
chain). Inside the bucket, below the optional prefix:

- `ab/cd/<sha256>`: stored objects, content-addressed as in `LocalStorage`;
- `incoming/<uuid>`: a large upload while it is written (multipart), copied to its
  key once its sha256 is known, then deleted;
- `spool/<name>`: job inputs (`S3Spool`).

Uploads are streamed: a body that fits in one part (`PART_SIZE`, 8 MiB) is one PUT
to its final key; a larger one is a multipart upload of 8 MiB parts, so at most
two parts are in memory whatever the size. A failed or too-large upload is
aborted: no object and no pending multipart upload remain (`purge_incoming` aborts
those a killed process left). Reads are ranged GETs in growing windows
(`backend.s3_bucket.S3Reader`), so `seek` (byte ranges, image decoding) costs no
more than it reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from backend.s3_bucket import Bucket, Parts, parts_of, translated
from backend.spool import Readable, check_name, new_name
from backend.storage import Download, StoredObject, relative_path

_OBJECT_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})")


class S3Storage:
    """Content-addressed objects in a bucket; see the module docstring for the layout."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def put(self, source: Readable, *, max_bytes: int | None = None) -> StoredObject:
        """Stream `source` into the bucket while hashing; return its key and size.

        A source of one part goes straight to its key. A larger one is written
        to `incoming/` by a multipart upload, then copied to its key (the sha256
        is known only at the end) and the upload deleted. Raises `TooLarge`
        past `max_bytes`, leaving nothing behind.
        """
        digest = hashlib.sha256()
        size = 0

        def counted() -> Iterator[bytearray]:
            nonlocal size
            for part in parts_of(source, max_bytes=max_bytes, digest=digest):
                size += len(part)
                yield part

        parts = Parts(counted())
        if parts.fit_in_one():  # all read and hashed: its key is known
            key = digest.hexdigest()
            self.bucket.write(relative_path(key), parts)
            return StoredObject(key=key, size=size)
        temp = f"incoming/{uuid.uuid4().hex}"
        try:
            self.bucket.write(temp, parts)
            key = digest.hexdigest()
            self.bucket.copy(temp, relative_path(key))
        finally:
            with contextlib.suppress(Exception):
                self.bucket.delete(temp)
        return StoredObject(key=key, size=size)

    def open(self, key: str) -> IO[bytes]:
        """Open the object for reading. Raises `FileNotFoundError`."""
        return self.bucket.open(relative_path(key))

    def delete(self, key: str) -> None:
        """Delete the object if it exists."""
        self.bucket.delete(relative_path(key))

    def exists(self, key: str) -> bool:
        """Return whether the object exists."""
        return self.bucket.exists(relative_path(key))

    def size(self, key: str) -> int:
        """Return the object's size in bytes. Raises `FileNotFoundError`."""
        return self.bucket.size(relative_path(key))

    def local_path(self, key: str) -> Path | None:
        """Objects in a bucket have no path on this machine."""
        return None

    def keys(self) -> Iterator[str]:
        """Yield every stored key."""
        for name, _modified in self.bucket.names(""):
            if found := _OBJECT_KEY.fullmatch(name):
                yield found.group(1)

    def purge_incoming(self, *, older_than_seconds: float) -> int:
        """Abort multipart uploads and delete `incoming/` objects a killed process left."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        removed = self.bucket.abort_uploads("incoming/", before=cutoff)
        for name, modified in list(self.bucket.names("incoming/")):
            if modified < cutoff:
                self.bucket.delete(name)
                removed += 1
        return removed

    def download_url(self, key: str, *, download: Download, expires_in: int) -> str:
        """Return a presigned GET of the object, answered with `download`'s headers."""
        with translated():
            return self.bucket.public_client.generate_presigned_url(
                "get_object", ExpiresIn=expires_in,
                Params={
                    "Bucket": self.bucket.name, "Key": self.bucket.key(relative_path(key)),
                    "ResponseContentType": download.content_type,
                    "ResponseContentDisposition": download.content_disposition,
                    "ResponseCacheControl": download.cache_control,
                },
            )  # fmt: skip


class S3Spool:
    """Job inputs under `spool/` in the bucket, where workers on any machine find them."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def write(self, source: Readable, *, suffix: str) -> str:
        """Stream `source` to a new input (multipart past one part); return its name."""
        name = new_name(suffix)
        self.bucket.write(f"spool/{name}", Parts(parts_of(source)))
        return name

    def open(self, name: str) -> IO[bytes]:
        """Open an input for reading. Raises `FileNotFoundError`."""
        return self.bucket.open(f"spool/{check_name(name)}")

    def exists(self, name: str) -> bool:
        """Return whether the input is there."""
        return self.bucket.exists(f"spool/{check_name(name)}")

    def copy(self, name: str) -> str:
        """Copy the input (server side) under a new name; return it."""
        copied = new_name("." + check_name(name).rsplit(".", 1)[1])
        self.bucket.copy(f"spool/{name}", f"spool/{copied}")
        return copied

    def delete(self, name: str) -> None:
        """Delete an input."""
        self.bucket.delete(f"spool/{check_name(name)}")

    def purge(self, *, older_than_seconds: float) -> int:
        """Delete inputs older than the cutoff, and abort their uploads cut short."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        removed = self.bucket.abort_uploads("spool/", before=cutoff)
        for name, modified in list(self.bucket.names("spool/")):
            if modified < cutoff:
                self.bucket.delete(name)
                removed += 1
        return removed
