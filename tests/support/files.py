"""Helpers for file tests: sample images and uploads."""

from __future__ import annotations

import io
from typing import Any

from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

API = "/api/v1"


def image_bytes(
    size: tuple[int, int] = (2000, 1000), fmt: str = "PNG", color: str = "red", **save: Any
) -> bytes:
    """Return an encoded image of `size`."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt, **save)
    return out.getvalue()


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    content: bytes,
    filename: str = "picture.png",
    content_type: str = "image/png",
    **form: str,
) -> TestResponse:
    """POST a multipart upload."""
    data: dict[str, Any] = {"file": (io.BytesIO(content), filename, content_type), **form}
    return client.post(
        f"{API}/files", data=data, headers=headers, content_type="multipart/form-data"
    )
