"""Which stores hold the app's bytes: `FILES_STORAGE_URL` picks the storage and the spool.

- unset, or `file:///path`: `LocalStorage` in `FILES_DIR` (or that path), job
  inputs in `SPOOL_DIR`: every process must see the same folders.
- `s3://bucket[/prefix]?endpoint_url=...&region=...`: `S3Storage` and `S3Spool`
  in the bucket, so web and worker processes on any machine share them.

Outside production a missing bucket is created at startup (development and
tests); in production it must exist.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Flask

from backend.s3_bucket import Bucket, Location
from backend.s3_storage import S3Spool, S3Storage
from backend.spool import LocalSpool, Spool
from backend.storage import LocalStorage, Storage, UploadRequest


def open_stores(config: dict[str, Any]) -> tuple[Storage, Spool]:
    """Return the storage and the spool that `config` names.

    Raises `ValueError` for a `FILES_STORAGE_URL` that is neither `file://` nor `s3://`.
    """
    url = config.get("FILES_STORAGE_URL") or ""
    scheme = urlsplit(url).scheme
    if scheme in ("", "file"):
        root = unquote(urlsplit(url).path) if url else config["FILES_DIR"]
        return LocalStorage(root), LocalSpool(config["SPOOL_DIR"])
    if scheme == "s3":
        bucket = Bucket(
            Location.from_url(url), access_key=config.get("AWS_ACCESS_KEY_ID"),
            secret_key=config.get("AWS_SECRET_ACCESS_KEY"),
        )  # fmt: skip
        if config.get("ENV") != "production":
            bucket.ensure_exists()
        bucket.client  # noqa: B018 - built now (~0.1 s, ~20 MiB), not by the first request
        return S3Storage(bucket), S3Spool(bucket)
    raise ValueError(f"FILES_STORAGE_URL must be file:///path or s3://bucket, got {url!r}")


def init_app(app: Flask) -> None:
    """Give the app its storage and spool.

    Requests to views marked with `storage.receives_uploads` get their file
    parts received into local storage (see `storage.UploadRequest`).
    """
    storage, spool = open_stores(app.config)
    app.extensions["storage"] = storage
    app.extensions["spool"] = spool
    app.request_class = UploadRequest
