"""Uploads received straight into storage: the view says so itself (`storage.receives_uploads`).

Local storage receives a marked view's file parts into its own folder (then renames
them into place); with S3 storage they are Werkzeug's temporary files, streamed to
the bucket by `S3Storage.put`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask, request

from backend.storage import RECEIVES_INTO_STORAGE, Incoming, receives_uploads

pytestmark = pytest.mark.both_stores


def where_the_part_went() -> str:
    stream = request.files["file"].stream
    return str(stream.path.parent) if isinstance(stream, Incoming) else type(stream).__name__


def part_of_an_unmarked_view() -> str:
    return where_the_part_went()


def a_form() -> dict[str, tuple[io.BytesIO, str]]:
    return {"file": (io.BytesIO(b"sku,name\nA-1,Tea\n"), "prices.csv")}


def test_the_upload_view_is_marked(app: Flask) -> None:
    assert getattr(app.view_functions["files.upload_file"], RECEIVES_INTO_STORAGE) is True


def test_a_marked_view_receives_parts_into_storage_whatever_its_name(
    make_app: Callable[..., Flask], files_storage: str
) -> None:
    app = make_app()
    marked = receives_uploads(where_the_part_went)
    app.add_url_rule("/renamed", "renamed.anything", marked, methods=["POST"])
    app.add_url_rule("/plain", "plain.upload", part_of_an_unmarked_view, methods=["POST"])
    client = app.test_client()
    incoming = Path(app.config["FILES_DIR"]) / "incoming"
    plain = client.post("/plain", data=a_form()).text
    assert plain != str(incoming)
    if files_storage == "s3":  # Werkzeug's temporary file, as for any view
        assert client.post("/renamed", data=a_form()).text == plain
        assert not incoming.exists()
        return
    assert client.post("/renamed", data=a_form()).text == str(incoming)
    assert list(incoming.iterdir()) == []  # parts nobody adopted are deleted with the request
