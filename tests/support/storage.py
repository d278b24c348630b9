"""What a test's file store holds, on either store: stored keys, leftovers, spooled inputs.

Local storage is looked at on disk (`FILES_DIR`, its `incoming/`, `SPOOL_DIR`); S3
storage by listing the bucket under the app's prefix, pending multipart uploads included.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from backend.s3_storage import S3Storage
from backend.storage import LocalStorage


def _s3(app: Flask) -> S3Storage | None:
    storage = app.extensions["storage"]
    return storage if isinstance(storage, S3Storage) else None


def stored_keys(app: Flask) -> list[str]:
    """The keys (sha256) of every stored object."""
    if (s3 := _s3(app)) is None:
        root = Path(app.config["FILES_DIR"])
        return sorted(p.name for p in root.glob("??/??/*") if p.is_file())
    return sorted(s3.keys())


def _listed(s3: S3Storage, objects_under: str, uploads_under: str) -> list[str]:
    bucket, client = s3.bucket, s3.bucket.client
    objects = client.list_objects_v2(Bucket=bucket.name, Prefix=bucket.key(objects_under))
    pending = client.list_multipart_uploads(Bucket=bucket.name, Prefix=bucket.key(uploads_under))
    return sorted(
        [f"object {item['Key']}" for item in objects.get("Contents", [])]
        + [f"pending upload {item['Key']}" for item in pending.get("Uploads", [])]
    )


def leftovers(app: Flask) -> list[str]:
    """What unfinished writes left: temporary files, or objects and multipart uploads."""
    if (s3 := _s3(app)) is None:
        storage = app.extensions["storage"]
        assert isinstance(storage, LocalStorage)
        incoming = storage.root / "incoming"
        return sorted(p.name for p in incoming.iterdir()) if incoming.exists() else []
    return _listed(s3, "incoming/", "")


def spooled(app: Flask) -> list[str]:
    """The job inputs waiting in the spool (and, on S3, uploads to it cut short)."""
    if (s3 := _s3(app)) is None:
        folder = Path(app.config["SPOOL_DIR"])
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return _listed(s3, "spool/", "spool/")
