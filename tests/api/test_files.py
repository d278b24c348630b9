"""Files: uploads checked from the bytes, downloads with ETag and ranges, who may read what."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import File
from tests.support.accounts import login, make_user
from tests.support.files import API, image_bytes, upload
from tests.support.helpers import assert_error, json_body
from tests.support.storage import leftovers, stored_keys

pytestmark = pytest.mark.both_stores

CSV = b"sku,name\nA-1,Tea\n"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def alice(client: FlaskClient) -> dict[str, str]:
    make_user("alice@example.test")
    return login(client, "alice@example.test").headers


@pytest.fixture
def bob(client: FlaskClient) -> dict[str, str]:
    make_user("bob@example.test")
    return login(client, "bob@example.test").headers


@pytest.mark.parametrize(
    ("content", "filename", "content_type", "expected_type"),
    [
        (CSV, "prices.csv", "text/csv", "text/csv"),
        (CSV, "prices.csv", "application/vnd.ms-excel", "text/csv"),
        (PDF, "report.pdf", "application/pdf", "application/pdf"),
        (image_bytes(fmt="JPEG"), "photo.jpg", "image/jpeg", "image/jpeg"),
        (image_bytes(fmt="PNG"), "upload", "application/octet-stream", "image/png"),
    ],
)
def test_upload_stores_the_bytes_under_their_sha256(
    client: FlaskClient,
    app: Flask,
    alice: dict[str, str],
    content: bytes,
    filename: str,
    content_type: str,
    expected_type: str,
) -> None:
    response = upload(client, alice, content, filename, content_type)
    assert response.status_code == 201, response.data
    body = json_body(response)
    digest = hashlib.sha256(content).hexdigest()
    assert body["sha256"] == digest
    assert body["size"] == len(content)
    assert body["content_type"] == expected_type
    assert body["filename"] == filename
    assert body["variants"] == {}
    assert response.headers["Location"].endswith(f"/files/{body['id']}")
    assert stored_keys(app) == [digest]
    assert leftovers(app) == []


def test_same_bytes_are_stored_once(client: FlaskClient, app: Flask, alice: dict[str, str]) -> None:
    first = json_body(upload(client, alice, CSV, "a.csv", "text/csv"))
    second = json_body(upload(client, alice, CSV, "b.csv", "text/csv"))
    assert first["id"] != second["id"]
    assert len(stored_keys(app)) == 1
    client.delete(f"{API}/files/{first['id']}", headers=alice)
    assert len(stored_keys(app)) == 1, "still used by the second file"
    assert client.get(f"{API}/files/{second['id']}/content", headers=alice).data == CSV
    assert client.delete(f"{API}/files/{second['id']}", headers=alice).status_code == 204
    assert stored_keys(app) == []


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("evil.txt", "x" * 100)
    return out.getvalue()


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
)


@pytest.mark.parametrize(
    ("content", "filename", "content_type"),
    [
        (zip_bytes(), "innocent.png", "image/png"),  # a ZIP calling itself a PNG
        (SVG, "logo.svg", "image/svg+xml"),  # SVG can carry script: not allowed by default
        (SVG, "logo.png", "image/png"),
        (image_bytes(fmt="JPEG"), "photo.png", "image/png"),  # declared PNG, really JPEG
        (image_bytes(fmt="PNG"), "photo.jpg", "application/octet-stream"),  # name lies
        (b"<html><script>x</script></html>", "page.csv", "text/csv"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 64, "tool.csv", "text/csv"),
    ],
)
def test_upload_refuses_content_that_lies_or_is_not_allowed(
    client: FlaskClient, app: Flask, alice: dict[str, str], content: bytes, filename: str,
    content_type: str,
) -> None:  # fmt: skip
    assert_error(
        upload(client, alice, content, filename, content_type), 415, "unsupported_media_type"
    )
    assert stored_keys(app) == []
    assert File.select().count() == 0


def test_empty_upload_is_refused(client: FlaskClient, app: Flask, alice: dict[str, str]) -> None:
    assert_error(upload(client, alice, b"", "empty.csv", "text/csv"), 422, "empty_file")
    assert File.select().count() == 0


def test_upload_over_the_limit_is_413_and_leaves_nothing(make_app: Callable[..., Flask]) -> None:
    app = make_app(FILES_MAX_BYTES=64 * 1024)
    with app.app_context():
        client = app.test_client()
        make_user("big@example.test")
        headers = login(client, "big@example.test").headers
        big = b"a,b\n" + b"1,2\n" * 40_000
        assert_error(upload(client, headers, big, "big.csv", "text/csv"), 413, "payload_too_large")
        assert stored_keys(app) == []
        assert leftovers(app) == []
        assert File.select().count() == 0


def test_the_file_limit_also_holds_when_the_body_length_is_unknown(
    make_app: Callable[..., Flask],
) -> None:
    """A file part over the limit is refused while streaming, not just by Content-Length."""
    from backend.services import files

    app = make_app(FILES_MAX_BYTES=1000)
    with app.app_context():
        user = make_user("stream@example.test")
        with pytest.raises(files.PayloadTooLarge):
            files.upload(
                owner=user, stream=io.BytesIO(b"a,b\n" * 1000), filename="x.csv",
                declared_type="text/csv",
            )  # fmt: skip
        assert stored_keys(app) == []
        assert leftovers(app) == []


def test_a_hostile_filename_is_kept_only_as_a_safe_display_name(
    client: FlaskClient, app: Flask, alice: dict[str, str]
) -> None:
    hostile = "../../etc/" + "\x00evil" + "é" * 300 + ".csv"
    body = json_body(upload(client, alice, CSV, hostile, "text/csv"))
    name = body["filename"]
    assert "/" not in name
    assert "\x00" not in name
    assert ".." not in name
    assert len(name) <= 200
    assert name.endswith(".csv")
    assert name.startswith("evil")
    disposition = client.get(f"{API}/files/{body['id']}/content", headers=alice).headers[
        "Content-Disposition"
    ]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''evil" in disposition
    assert all(key == body["sha256"] for key in stored_keys(app))


def test_a_pixel_bomb_is_refused(client: FlaskClient, app: Flask, alice: dict[str, str]) -> None:
    bomb = image_bytes((12_000, 12_000), color="white")  # 144 MP compresses to a few KB
    assert len(bomb) < 1024 * 1024
    assert_error(upload(client, alice, bomb, "bomb.png", "image/png"), 422, "image_too_large")
    assert stored_keys(app) == []
    assert File.select().count() == 0


def test_metadata_and_content_are_private_to_the_owner_and_admins(
    client: FlaskClient, alice: dict[str, str], bob: dict[str, str], admin: dict[str, str]
) -> None:
    file_id = json_body(upload(client, alice, CSV, "mine.csv", "text/csv"))["id"]
    for path in (f"/files/{file_id}", f"/files/{file_id}/content"):
        assert client.get(API + path, headers=alice).status_code == 200
        assert client.get(API + path, headers=admin).status_code == 200
        assert_error(client.get(API + path, headers=bob), 404, "not_found")
        assert_error(client.get(API + path), 404, "not_found")
    assert_error(client.delete(f"{API}/files/{file_id}", headers=bob), 404, "not_found")
    assert_error(client.get(f"{API}/files/999999", headers=alice), 404, "not_found")
    assert [f["id"] for f in client.get(f"{API}/files", headers=bob).get_json()] == []
    assert [f["id"] for f in client.get(f"{API}/files", headers=alice).get_json()] == [file_id]
    assert [f["id"] for f in client.get(f"{API}/files", headers=admin).get_json()] == [file_id]


@pytest.mark.parametrize("path", ["/files", "/files/1"])
def test_writes_need_a_token(client: FlaskClient, path: str) -> None:
    method = client.post if path == "/files" else client.delete
    assert_error(method(API + path), 401, "unauthorized")


def test_download_has_etag_304_and_safe_headers(client: FlaskClient, alice: dict[str, str]) -> None:
    body = json_body(upload(client, alice, PDF, "report.pdf", "application/pdf"))
    url = f"{API}/files/{body['id']}/content"
    response = client.get(url, headers=alice)
    assert response.status_code == 200
    assert response.data == PDF
    assert response.headers["ETag"] == f'"{body["sha256"]}"'
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    again = client.get(url, headers={**alice, "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""
    other = client.get(url, headers={**alice, "If-None-Match": '"something-else"'})
    assert other.status_code == 200
    versioned = client.get(API.removesuffix("/api/v1") + body["url"], headers=alice)
    assert versioned.headers["Cache-Control"] == "private, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=0-9", 206, (0, 10)),
        ("bytes=10-", 206, (10, None)),
        ("bytes=-5", 206, (-5, None)),
        ("bytes=5-100000", 206, (5, None)),  # clamped to the end
        ("bytes=0-1,5-6", 200, (0, None)),  # multi-range: the whole file
        ("items=0-1", 200, (0, None)),  # unknown unit: ignored
        ("bytes=9-3", 416, None),  # inverted
        ("bytes=100000-", 416, None),  # past the end
        ("bytes=abc", 416, None),  # malformed
    ],
)
def test_single_byte_ranges(
    client: FlaskClient,
    alice: dict[str, str],
    header: str,
    status: int,
    expected: tuple[int, int | None] | None,
) -> None:
    content = b"id,value\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(200))
    body = json_body(upload(client, alice, content, "data.csv", "text/csv"))
    response = client.get(f"{API}/files/{body['id']}/content", headers={**alice, "Range": header})
    if status == 416:
        assert_error(response, 416, "range_not_satisfiable")
        assert response.headers["Content-Range"] == f"bytes */{len(content)}"
        return
    assert response.status_code == status
    assert expected is not None
    start, stop = expected
    assert response.data == content[start:stop]
    if status == 206:
        first = start if start >= 0 else len(content) + start
        assert response.headers["Content-Range"] == (
            f"bytes {first}-{first + len(response.data) - 1}/{len(content)}"
        )


def test_if_range_with_an_old_etag_sends_everything(
    client: FlaskClient, alice: dict[str, str]
) -> None:
    body = json_body(upload(client, alice, CSV, "a.csv", "text/csv"))
    url = f"{API}/files/{body['id']}/content"
    stale = client.get(url, headers={**alice, "Range": "bytes=0-1", "If-Range": '"old"'})
    assert stale.status_code == 200
    assert stale.data == CSV
    fresh = client.get(
        url, headers={**alice, "Range": "bytes=0-1", "If-Range": f'"{body["sha256"]}"'}
    )
    assert fresh.status_code == 206
    assert fresh.data == CSV[:2]


def test_accel_redirect_hands_the_body_to_the_front_server(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(FILES_ACCEL_REDIRECT_PREFIX="/protected/")
    with app.app_context():
        client = app.test_client()
        make_user("carol@example.test")
        headers = login(client, "carol@example.test").headers
        body = json_body(upload(client, headers, CSV, "a.csv", "text/csv"))
        response = client.get(f"{API}/files/{body['id']}/content", headers=headers)
        sha = body["sha256"]
        assert response.headers["X-Accel-Redirect"] == f"/protected/{sha[:2]}/{sha[2:4]}/{sha}"
        assert response.data == b""


def test_unknown_variant_is_a_validation_error(client: FlaskClient, alice: dict[str, str]) -> None:
    body = json_body(upload(client, alice, image_bytes(), "p.png", "image/png"))
    response = client.get(f"{API}/files/{body['id']}/content?variant=huge", headers=alice)
    assert_error(response, 422, "validation_error")
