"""Upload URLs (Flet's `FilePicker.upload`): signed, single-use, raw bodies with no headers."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from backend.models import File, Job, Product, UploadUrl, User
from tests.support.accounts import USER_EMAIL, login, make_user
from tests.support.files import API, image_bytes
from tests.support.helpers import assert_error, json_body
from tests.support.log_capture import captured_logs
from tests.support.storage import leftovers, spooled, stored_keys

pytestmark = pytest.mark.both_stores

CSV = b"sku,name\nA-1,Tea\n"
PRODUCTS = b"sku,name,description,price,currency,stock\nT-1,Tea,,4.50,USD,3\nT-2,Mug,,x,USD,1\n"
ORIGIN = "http://localhost:8550"


def new_url(
    client: FlaskClient, headers: dict[str, str], path: str = "/files/upload-urls", **body: Any
) -> dict[str, Any]:
    response = client.post(f"{API}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.data
    return json_body(response)


def file_url(client: FlaskClient, headers: dict[str, str], **body: Any) -> str:
    made = new_url(client, headers, **{"filename": "prices.csv", **body})
    return str(made["upload_url"])


def put(client: FlaskClient, url: str, content: bytes) -> TestResponse:
    """PUT `content` as Flet does: the raw bytes and no headers at all."""
    return client.put(url, data=content)


def put_chunked(client: FlaskClient, url: str, content: bytes) -> TestResponse:
    """PUT without a length, as a server that terminates chunked bodies passes it (gunicorn).

    With `Transfer-Encoding: chunked` the request has no length (RFC 9112), whatever
    `Content-Length` the test client adds.
    """
    return client.put(
        url, input_stream=io.BytesIO(content), headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )  # fmt: skip


def login_as(client: FlaskClient, email: str) -> dict[str, str]:
    make_user(email)
    return login(client, email).headers


def test_an_upload_url_is_absolute_short_lived_and_bounded(
    client: FlaskClient, app: Flask, user: dict[str, str]
) -> None:
    made = new_url(client, user, filename="photo.png", content_type="image/png", size=1234)
    assert made["method"] == "PUT"
    assert isinstance(made["upload_id"], int)
    assert made["max_bytes"] == 1234
    assert made["upload_url"].startswith("http://localhost/api/v1/files/uploads/")
    left = made["expires_at"]
    assert left.endswith("+00:00")

    ttl = datetime.fromisoformat(left).timestamp() - time.time()
    assert 898 <= ttl <= 900
    unbounded = new_url(client, user, filename="a.csv")
    assert unbounded["max_bytes"] == app.config["FILES_MAX_BYTES"]
    proxied = client.post(
        f"{API}/files/upload-urls", json={"filename": "a.csv"}, headers=user,
        base_url="https://shop.example.test",
    )  # fmt: skip
    assert json_body(proxied)["upload_url"].startswith("https://shop.example.test/api/v1/")


def test_an_image_put_with_no_headers_is_stored_like_post_files(
    client: FlaskClient, app: Flask, user: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    picture = image_bytes((800, 600), fmt="PNG")
    url = file_url(client, user, filename="holiday.png", size=len(picture))
    response = put(client, url, picture)
    assert "Authorization" not in response.request.headers
    assert "Content-Type" not in response.request.headers
    assert response.status_code == 201, response.data
    body = json_body(response)
    assert response.headers["Location"] == f"/api/v1/files/{body['id']}"
    assert (body["filename"], body["content_type"], body["size"]) == (
        "holiday.png", "image/png", len(picture),
    )  # fmt: skip
    assert (body["width"], body["height"], body["purpose"]) == (800, 600, "upload")
    record = File.get_by_id(body["id"])
    assert User.get_by_id(record.owner_id).email == USER_EMAIL
    job = Job.get(Job.id == body["rendition_job_id"])
    assert job.kind == "files.renditions"
    run_worker()
    rendered = json_body(client.get(f"{API}/files/{body['id']}", headers=user))
    assert set(rendered["variants"]) == {"thumb", "mobile", "desktop"}
    assert client.get(f"{API}/files/{body['id']}").status_code == 404  # private, as uploads are
    assert leftovers(app) == []


def test_a_csv_put_and_the_url_is_spent(client: FlaskClient, user: dict[str, str]) -> None:
    url = file_url(client, user, content_type="text/csv")
    first = put(client, url, CSV)
    assert first.status_code == 201, first.data
    assert json_body(first)["content_type"] == "text/csv"
    file_id = json_body(first)["id"]
    assert client.get(f"{API}/files/{file_id}/content", headers=user).data == CSV
    assert_error(put(client, url, CSV), 409, "upload_url_used")
    assert File.select().count() == 1


def test_a_chunked_body_is_received(client: FlaskClient, user: dict[str, str]) -> None:
    content = CSV * 100_000  # 1.7 MB, more than one read
    response = put_chunked(client, file_url(client, user), content)
    assert response.status_code == 201, response.data
    assert json_body(response)["size"] == len(content)
    assert response.request.content_length is None


def test_an_expired_url_is_410(make_app: Callable[..., Flask], user: dict[str, str]) -> None:
    client = make_app(UPLOAD_URL_TTL_SECONDS=1).test_client()
    url = file_url(client, user)
    time.sleep(1.1)
    assert_error(put(client, url, CSV), 410, "expired")
    assert File.select().count() == 0


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # the signature
        lambda token: "x" + token[1:],  # the claims
        lambda token: "garbage",
        lambda token: "",
    ],
)
def test_a_tampered_or_made_up_token_is_403(
    client: FlaskClient, user: dict[str, str], tamper: Callable[[str], str]
) -> None:
    url = file_url(client, user)
    prefix, token = url.rsplit("/", 1)
    response = put(client, f"{prefix}/{tamper(token)}", CSV)
    if tamper(token):
        assert_error(response, 403, "invalid_upload_url")
    else:
        assert response.status_code in (404, 405)
    assert put(client, url, CSV).status_code == 201, "the real URL still works"


def test_an_unknown_token_id_is_403(client: FlaskClient, user: dict[str, str]) -> None:
    url = file_url(client, user)
    UploadUrl.delete().execute()  # purged (or never stored)
    assert_error(put(client, url, CSV), 403, "invalid_upload_url")


def test_a_url_only_works_for_what_it_was_made_for(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    file_token = file_url(client, admin).rsplit("/", 1)[1]
    import_url = new_url(client, admin, "/products/import/upload-url")["upload_url"]
    import_token = import_url.rsplit("/", 1)[1]
    assert_error(put(client, f"{API}/products/import/uploads/{file_token}", PRODUCTS), 403,
                 "invalid_upload_url")  # fmt: skip
    assert_error(put(client, f"{API}/files/uploads/{import_token}", CSV), 403,
                 "invalid_upload_url")  # fmt: skip
    image = file_url(client, admin, filename="logo.png", purpose="product_image")
    body = json_body(put(client, image, image_bytes((40, 40))))
    assert body["purpose"] == "product_image"


def test_product_images_are_for_admins(client: FlaskClient, user: dict[str, str]) -> None:
    response = client.post(
        f"{API}/files/upload-urls", json={"filename": "a.png", "purpose": "product_image"},
        headers=user,
    )  # fmt: skip
    assert_error(response, 403, "forbidden")


def test_asking_for_more_than_files_max_bytes_is_413_upfront(
    client: FlaskClient, app: Flask, user: dict[str, str]
) -> None:
    response = client.post(
        f"{API}/files/upload-urls", headers=user,
        json={"filename": "big.pdf", "size": app.config["FILES_MAX_BYTES"] + 1},
    )  # fmt: skip
    body = assert_error(response, 413, "payload_too_large")
    assert "size" in body["errors"]["json"]
    assert UploadUrl.select().count() == 0


def test_a_url_needs_a_token_and_a_filename(client: FlaskClient, user: dict[str, str]) -> None:
    assert_error(client.post(f"{API}/files/upload-urls", json={"filename": "a.csv"}), 401,
                 "unauthorized")  # fmt: skip
    assert_error(client.post(f"{API}/files/upload-urls", json={}, headers=user), 422,
                 "validation_error")  # fmt: skip


@pytest.mark.parametrize("sender", [put, put_chunked])
def test_over_max_bytes_is_413_nothing_is_stored_and_the_url_stays_usable(
    client: FlaskClient, app: Flask, user: dict[str, str],
    sender: Callable[[FlaskClient, str, bytes], TestResponse],
) -> None:  # fmt: skip
    url = file_url(client, user, size=len(CSV))
    assert_error(sender(client, url, CSV + b"B-2,Mug\n"), 413, "payload_too_large")
    assert File.select().count() == 0
    assert stored_keys(app) == []
    assert leftovers(app) == []
    assert sender(client, url, CSV).status_code == 201, "a refused body does not spend the URL"


def test_exactly_max_bytes_is_accepted_chunked(client: FlaskClient, user: dict[str, str]) -> None:
    response = put_chunked(client, file_url(client, user, size=len(CSV)), CSV)
    assert response.status_code == 201, response.data


def test_content_that_lies_about_its_type_is_415(
    client: FlaskClient, app: Flask, user: dict[str, str]
) -> None:
    url = file_url(client, user, filename="photo.png", content_type="image/png")
    assert_error(put(client, url, image_bytes((20, 20), fmt="JPEG")), 415,
                 "unsupported_media_type")  # fmt: skip
    assert_error(put(client, url, b"\x7fELF\x02\x01\x01" + b"\0" * 64), 415,
                 "unsupported_media_type")  # fmt: skip
    assert File.select().count() == 0
    assert stored_keys(app) == []
    assert_error(put(client, url, b""), 422, "empty_file")
    assert put(client, url, image_bytes((20, 20), fmt="PNG")).status_code == 201


def test_a_deactivated_user_or_an_ended_sign_in_cannot_use_their_urls(
    client: FlaskClient, user: dict[str, str]
) -> None:
    first, second = file_url(client, user), file_url(client, user)
    User.update(is_active=False).execute()
    assert_error(put(client, first, CSV), 403, "forbidden")
    User.update(is_active=True).execute()
    assert client.post(f"{API}/auth/logout", headers=user).status_code == 204
    assert_error(put(client, second, CSV), 403, "forbidden")
    assert File.select().count() == 0


def test_a_url_being_used_cannot_be_used_again_meanwhile(
    client: FlaskClient, user: dict[str, str]
) -> None:
    url = file_url(client, user)
    UploadUrl.update(used_at=UploadUrl.created_at).execute()  # an upload under way
    assert_error(put(client, url, CSV), 409, "upload_url_used")


def test_cors_preflight_allows_put_from_configured_origins(
    make_app: Callable[..., Flask], user: dict[str, str]
) -> None:
    client = make_app(CORS_ORIGINS=[ORIGIN]).test_client()
    url = file_url(client, user)
    preflight = client.options(
        url, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    response = client.put(url, data=CSV, headers={"Origin": ORIGIN})
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Location" in response.headers["Access-Control-Expose-Headers"]


@pytest.fixture
def app_with_spool(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(SPOOL_DIR=str(tmp_path / "spool"))


def test_an_import_url_starts_the_import_job(
    app_with_spool: Flask, admin: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    client = app_with_spool.test_client()
    made = new_url(client, admin, "/products/import/upload-url", size=len(PRODUCTS))
    assert made["max_bytes"] == len(PRODUCTS)
    assert "/api/v1/products/import/uploads/" in made["upload_url"]
    response = put(client, made["upload_url"], PRODUCTS)
    assert response.status_code == 202, response.data
    job = json_body(response)
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"]) == ("products.import", "queued")
    with app_with_spool.app_context():
        run_worker()
    done = json_body(client.get(f"{API}/jobs/{job['id']}", headers=admin))
    assert done["status"] == "succeeded"
    assert (done["result"]["created"], done["result"]["failed"]) == (1, 1)
    assert Product.get().sku == "T-1"
    assert spooled(app_with_spool) == []
    assert_error(put(client, made["upload_url"], PRODUCTS), 409, "upload_url_used")


def test_an_import_url_without_a_body_takes_import_max_bytes(
    app_with_spool: Flask, admin: dict[str, str]
) -> None:
    client = app_with_spool.test_client()
    response = client.post(f"{API}/products/import/upload-url", headers=admin)
    assert response.status_code == 201, response.data
    assert json_body(response)["max_bytes"] == app_with_spool.config["IMPORT_MAX_BYTES"]


def test_a_bad_or_too_large_csv_is_refused_and_leaves_nothing(
    app_with_spool: Flask, admin: dict[str, str]
) -> None:
    client = app_with_spool.test_client()
    url = new_url(client, admin, "/products/import/upload-url", size=len(PRODUCTS))["upload_url"]
    assert_error(put(client, url, b"wrong,header\n"), 422, "invalid_csv")
    assert_error(put_chunked(client, url, PRODUCTS + b"T-3,Pot,,1.00,USD,1\n"), 413,
                 "payload_too_large")  # fmt: skip
    assert_error(put(client, url, PRODUCTS * 2), 413, "payload_too_large")
    assert Job.select().count() == 0
    assert spooled(app_with_spool) == []
    assert put(client, url, PRODUCTS).status_code == 202, "refusals do not spend the URL"


def test_import_urls_are_for_admins(client: FlaskClient, user: dict[str, str]) -> None:
    assert_error(client.post(f"{API}/products/import/upload-url", json={}, headers=user), 403,
                 "forbidden")  # fmt: skip


def test_an_import_url_over_import_max_bytes_is_413(
    client: FlaskClient, app: Flask, admin: dict[str, str]
) -> None:
    size = app.config["IMPORT_MAX_BYTES"] + 1
    response = client.post(f"{API}/products/import/upload-url", json={"size": size}, headers=admin)
    assert_error(response, 413, "payload_too_large")


def test_the_access_log_never_holds_the_token(
    client: FlaskClient, app: Flask, user: dict[str, str]
) -> None:
    url = file_url(client, user)
    token = url.rsplit("/", 1)[1]
    with captured_logs(app) as lines:
        assert put(client, url, CSV).status_code == 201
    paths = [line["path"] for line in lines.access()]
    assert paths == ["/api/v1/files/uploads/<token>"]
    assert token not in str(lines.all())


def test_an_admin_demoted_meanwhile_cannot_use_their_urls(
    app_with_spool: Flask, admin: dict[str, str]
) -> None:
    client = app_with_spool.test_client()
    imports = new_url(client, admin, "/products/import/upload-url")["upload_url"]
    image = file_url(client, admin, filename="logo.png", purpose="product_image")
    User.update(role="user").execute()
    assert_error(put(client, imports, PRODUCTS), 403, "forbidden")
    assert_error(put(client, image, image_bytes((40, 40))), 403, "forbidden")
    assert spooled(app_with_spool) == []
    assert File.select().count() == 0
    User.update(role="admin").execute()
    assert put(client, imports, PRODUCTS).status_code == 202, "refusals do not spend the URL"


def outcome(client: FlaskClient, headers: dict[str, str], upload_id: int) -> dict[str, Any]:
    response = client.get(f"{API}/files/upload-urls/{upload_id}", headers=headers)
    assert response.status_code == 200, response.data
    return json_body(response)


def test_the_app_learns_what_its_put_made(
    client: FlaskClient, user: dict[str, str], admin: dict[str, str]
) -> None:
    made = new_url(client, user, filename="prices.csv")
    assert outcome(client, user, made["upload_id"]) == {
        "upload_id": made["upload_id"], "status": "pending", "expires_at": made["expires_at"],
        "file": None, "job": None,
    }  # fmt: skip
    assert put(client, made["upload_url"], b"").status_code == 422
    assert outcome(client, user, made["upload_id"])["status"] == "pending"
    stored = json_body(put(client, made["upload_url"], CSV))
    done = outcome(client, user, made["upload_id"])
    assert (done["status"], done["file"], done["job"]) == ("completed", stored, None)
    assert client.delete(f"{API}/files/{stored['id']}", headers=user).status_code == 204
    assert outcome(client, user, made["upload_id"])["status"] == "completed"
    imports = new_url(client, admin, "/products/import/upload-url")
    job = json_body(put(client, imports["upload_url"], PRODUCTS))
    assert outcome(client, admin, imports["upload_id"])["job"]["id"] == job["id"]
    assert outcome(client, admin, made["upload_id"])["status"] == "completed"  # admins: all


def test_outcomes_are_private_and_expire(
    make_app: Callable[..., Flask], user: dict[str, str]
) -> None:
    client = make_app(UPLOAD_URL_TTL_SECONDS=1).test_client()
    made = new_url(client, user, filename="prices.csv")
    other = login_as(client, "bob@example.test")
    assert_error(client.get(f"{API}/files/upload-urls/{made['upload_id']}", headers=other), 404,
                 "not_found")  # fmt: skip
    time.sleep(1.1)
    assert outcome(client, user, made["upload_id"])["status"] == "expired"
