"""Files on S3 storage (a real SeaweedFS): large multipart uploads, redirects to presigned URLs.

The rest of the file suite runs on both stores (`both_stores`); these are what only
an object store does.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import File, Product
from backend.s3_bucket import PART_SIZE, Bucket, Location
from backend.s3_storage import S3Storage
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.files import API, image_bytes, upload
from tests.support.helpers import assert_error, json_body
from tests.support.processes import free_port
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, S3Store
from tests.support.storage import leftovers, stored_keys

CSV = b"sku,name\nA-1,Tea\n"
BIG = b"id,value\n" + b"".join(b"%07d,%d\n" % (i, i % 97) for i in range(PART_SIZE // 10 + 5000))


@pytest.fixture
def on_s3(make_app: Callable[..., Flask], s3_store: S3Store) -> Callable[..., Flask]:
    """Build apps on this test's S3 store."""

    def build(**overrides: Any) -> Flask:
        return make_app(**s3_store.settings(), **overrides)

    return build


@pytest.fixture
def redirecting(on_s3: Callable[..., Flask]) -> Iterator[Flask]:
    app = on_s3(FILES_DOWNLOAD_REDIRECT=True)
    with app.app_context():
        yield app


def signed_in(client: FlaskClient, email: str, role: str = "user") -> dict[str, str]:
    make_user(email, role=role)
    return login(client, email).headers


def test_a_file_above_the_part_size_goes_up_in_parts_and_comes_back_in_ranges(
    on_s3: Callable[..., Flask],
) -> None:
    assert len(BIG) > PART_SIZE
    app = on_s3()
    with app.app_context():
        client = app.test_client()
        headers = signed_in(client, "big@example.test")
        body = json_body(upload(client, headers, BIG, "big.csv", "text/csv"))
        assert (body["size"], body["sha256"]) == (len(BIG), hashlib.sha256(BIG).hexdigest())
        assert stored_keys(app) == [body["sha256"]]
        assert leftovers(app) == []
        url = f"{API}/files/{body['id']}/content"
        whole = client.get(url, headers=headers)
        assert whole.headers["Content-Length"] == str(len(BIG))
        assert whole.data == BIG
        tail = client.get(url, headers={**headers, "Range": f"bytes={len(BIG) - 100}-"})
        assert (tail.status_code, tail.data) == (206, BIG[-100:])
        middle = client.get(
            url, headers={**headers, "Range": f"bytes={PART_SIZE - 5}-{PART_SIZE + 4}"}
        )
        assert (middle.status_code, middle.data) == (206, BIG[PART_SIZE - 5 : PART_SIZE + 5])
        assert_error(client.get(url, headers={**headers, "Range": "bytes=99999999-"}), 416,
                     "range_not_satisfiable")  # fmt: skip
        etag = whole.headers["ETag"]
        assert client.get(url, headers={**headers, "If-None-Match": etag}).status_code == 304


def test_a_streamed_upload_over_the_limit_aborts_its_multipart_upload(
    on_s3: Callable[..., Flask],
) -> None:
    app = on_s3(FILES_MAX_BYTES=PART_SIZE + 1000)
    with app.app_context():
        client = app.test_client()
        headers = signed_in(client, "big@example.test")
        made = client.post(
            f"{API}/files/upload-urls", json={"filename": "big.csv"}, headers=headers
        )
        url = json_body(made)["upload_url"]
        response = client.put(  # chunked: the limit is found while streaming, past part one
            url, input_stream=io.BytesIO(BIG), headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )  # fmt: skip
        assert_error(response, 413, "payload_too_large")
        assert stored_keys(app) == []
        assert leftovers(app) == [], "no object and no pending multipart upload"
        assert File.select().count() == 0


def test_redirect_mode_sends_a_presigned_url_that_downloads_the_bytes(
    redirecting: Flask,
) -> None:
    client = redirecting.test_client()
    alice = signed_in(client, "alice@example.test")
    body = json_body(upload(client, alice, CSV, "prices.csv", "text/csv"))
    url = f"{API}/files/{body['id']}/content"
    response = client.get(url, headers=alice)
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["ETag"] == f'"{body["sha256"]}"'
    location = response.headers["Location"]
    assert "X-Amz-Signature=" in location
    assert "X-Amz-Expires=60" in location
    fetched = httpx.get(location, timeout=10)  # no token: the URL is the credential
    assert fetched.status_code == 200
    assert fetched.content == CSV
    assert fetched.headers["content-type"] == "text/csv"
    assert fetched.headers["content-disposition"].startswith('attachment; filename="prices.csv"')
    assert fetched.headers["cache-control"] == "private, no-cache"
    part = httpx.get(location, headers={"Range": "bytes=4-7"}, timeout=10)
    assert (part.status_code, part.content) == (206, CSV[4:8])
    assert (
        client.get(url, headers={**alice, "If-None-Match": f'"{body["sha256"]}"'}).status_code
        == 304
    )


def test_redirect_mode_refuses_exactly_what_the_proxied_path_refuses(
    redirecting: Flask, on_s3: Callable[..., Flask]
) -> None:
    client = redirecting.test_client()
    alice = signed_in(client, "alice@example.test")
    bob = signed_in(client, "bob@example.test")
    admin = signed_in(client, "root@example.test", role="admin")
    private = json_body(upload(client, alice, CSV, "mine.csv", "text/csv"))["id"]
    image = json_body(upload(client, admin, image_bytes((40, 30)), "p.png", "image/png",
                             purpose="product_image"))["id"]  # fmt: skip
    proxied = on_s3().test_client()
    for http in (client, proxied):
        for who in (bob, {}):
            response = http.get(f"{API}/files/{private}/content", headers=who)
            assert_error(response, 404, "not_found")
            assert "Location" not in response.headers
        assert_error(http.get(f"{API}/files/{image}/content"), 404, "not_found")  # not shown yet
    assert client.get(f"{API}/files/{private}/content", headers=admin).status_code == 302
    product = make_product("SHOWN")
    Product.update(image_file_id=image).where(Product.id == product.id).execute()
    public = client.get(f"{API}/files/{image}/content")
    assert public.status_code == 302
    assert httpx.get(public.headers["Location"], timeout=10).headers["cache-control"] == (
        "public, no-cache"
    )
    Product.update(is_active=False).where(Product.id == product.id).execute()
    assert_error(client.get(f"{API}/files/{image}/content"), 404, "not_found")


def test_a_presigned_url_expires(on_s3: Callable[..., Flask]) -> None:
    app = on_s3(FILES_DOWNLOAD_REDIRECT=True, FILES_DOWNLOAD_URL_TTL_SECONDS=1)
    with app.app_context():
        client = app.test_client()
        alice = signed_in(client, "alice@example.test")
        file_id = json_body(upload(client, alice, CSV, "a.csv", "text/csv"))["id"]
        location = client.get(f"{API}/files/{file_id}/content", headers=alice).headers["Location"]
        time.sleep(2.1)
        assert httpx.get(location, timeout=10).status_code == 403


def test_redirect_mode_on_local_storage_proxies(make_app: Callable[..., Flask]) -> None:
    app = make_app(FILES_DOWNLOAD_REDIRECT=True)
    with app.app_context():
        client = app.test_client()
        alice = signed_in(client, "alice@example.test")
        file_id = json_body(upload(client, alice, CSV, "a.csv", "text/csv"))["id"]
        response = client.get(f"{API}/files/{file_id}/content", headers=alice)
        assert (response.status_code, response.data) == (200, CSV)


def test_an_unreachable_store_is_503(on_s3: Callable[..., Flask], s3_store: S3Store) -> None:
    app = on_s3()
    with app.app_context():
        client = app.test_client()
        alice = signed_in(client, "alice@example.test")
        file_id = json_body(upload(client, alice, CSV, "a.csv", "text/csv"))["id"]
        dead = S3Store(f"http://127.0.0.1:{free_port()}", s3_store.bucket, s3_store.prefix)
        app.extensions["storage"] = S3Storage(
            Bucket(Location.from_url(dead.url), access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        )
        response = client.get(f"{API}/files/{file_id}/content", headers=alice)
        assert_error(response, 503, "service_unavailable")
        assert response.headers["Retry-After"] == "5"
        assert_error(upload(client, alice, b"x,y\n", "b.csv", "text/csv"), 503,
                     "service_unavailable")  # fmt: skip
