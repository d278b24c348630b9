"""Image renditions made by a real worker, variant choice, product images, and cleanup."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from backend.models import File, Job, utcnow
from backend.services import files
from backend.services.media import make_renditions, safe_filename, sniff
from backend.storage import LocalStorage
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.files import API, image_bytes, upload
from tests.support.helpers import assert_error, json_body, stream_events


@pytest.fixture
def alice(client: FlaskClient) -> dict[str, str]:
    make_user("alice@example.test")
    return login(client, "alice@example.test").headers


def rotated_jpeg_with_exif() -> bytes:
    """A 400×200 JPEG whose EXIF says "rotate 90° clockwise" (shown 200×400), with GPS."""
    image = Image.new("RGB", (400, 200), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "SecretCam"  # camera make
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_renditions_are_made_by_the_worker_and_served(
    client: FlaskClient, alice: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    body = json_body(upload(client, alice, image_bytes((2000, 1000)), "wide.png", "image/png"))
    url = f"{API}/files/{body['id']}/content"
    before = client.get(f"{url}?variant=mobile", headers=alice)
    assert before.headers["Content-Type"] == "image/png", "the original until it is ready"
    assert before.headers["Cache-Control"] == "private, no-cache"
    run_worker()
    job = Job.get_by_id(body["rendition_job_id"])
    assert job.status == "succeeded"
    assert job.progress["percent"] == 100.0
    variants = json_body(client.get(f"{API}/files/{body['id']}", headers=alice))["variants"]
    assert {n: (v["width"], v["height"]) for n, v in variants.items()} == {
        "thumb": (160, 80), "mobile": (640, 320), "desktop": (1600, 800),
    }  # fmt: skip
    for name, variant in variants.items():
        response = client.get(f"{url}?variant={name}", headers=alice)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/webp"
        assert response.headers["ETag"] == f'"{variant["sha256"]}"'
        with Image.open(io.BytesIO(response.data)) as image:
            assert image.format == "WEBP"
            assert image.size == (variant["width"], variant["height"])
        immutable = client.get(API.removesuffix("/api/v1") + variant["url"], headers=alice)
        assert immutable.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        assert immutable.data == response.data
    events = [kind for kind, _ in stream_events(f"user:{job.user_id}")]
    assert "job.progress" in events
    assert events[-1] == "job.succeeded"


@pytest.mark.parametrize(
    ("width", "expected"),
    [(1, "thumb"), (160, "thumb"), (161, "mobile"), (640, "mobile"), (1000, "desktop"),
     (1600, "desktop"), (1601, None)],
)  # fmt: skip
def test_w_picks_the_smallest_rendition_at_least_that_wide(
    width: int, expected: str | None
) -> None:
    record = File(width=2000, variants={"thumb": {"width": 160}, "mobile": {"width": 640},
                                        "desktop": {"width": 1600}})  # fmt: skip
    assert files.pick_variant(record, variant=None, width=width) == expected


def test_small_images_are_not_enlarged_and_w_falls_back_to_the_original() -> None:
    record = File(width=300, variants={"thumb": {"width": 160}, "mobile": {"width": 300},
                                       "desktop": {"width": 300}})  # fmt: skip
    assert files.pick_variant(record, variant=None, width=200) is None
    assert files.pick_variant(record, variant="mobile", width=None) == "mobile"
    renditions = make_renditions(io.BytesIO(image_bytes((300, 100))), max_pixels=10**6)
    assert [(r.name, r.width, r.height) for r in renditions] == [
        ("thumb", 160, 53), ("mobile", 300, 100), ("desktop", 300, 100),
    ]  # fmt: skip


def test_renditions_follow_exif_orientation_and_drop_metadata() -> None:
    renditions = make_renditions(io.BytesIO(rotated_jpeg_with_exif()), max_pixels=10**6)
    desktop = renditions[-1]
    with Image.open(io.BytesIO(desktop.data)) as image:
        assert image.size == (200, 400)
        assert not image.getexif()
        assert "exif" not in image.info
        assert "icc_profile" not in image.info
    assert b"SecretCam" not in desktop.data


def test_a_truncated_jpeg_fails_its_rendition_job_and_stays_downloadable(
    client: FlaskClient, alice: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    whole = image_bytes((1200, 900), fmt="JPEG", quality=95)
    truncated = whole[: len(whole) // 2]
    body = json_body(upload(client, alice, truncated, "cut.jpg", "image/jpeg"))
    run_worker()
    job = Job.get_by_id(body["rendition_job_id"])
    assert job.status == "failed"
    assert job.error is not None
    assert job.error.startswith("The image cannot be decoded")
    assert "Traceback" not in job.error
    response = client.get(f"{API}/files/{body['id']}/content?variant=thumb", headers=alice)
    assert response.status_code == 200
    assert response.data == truncated


def test_a_bomb_within_the_header_check_is_stopped_by_the_rendition_job(
    make_app: Callable[..., Flask],
) -> None:
    """Pillow's guard holds in the job too (say, the pixel cap was lowered after upload)."""
    with pytest.raises(files.ValidationFailed) as raised:
        make_renditions(io.BytesIO(image_bytes((3000, 3000))), max_pixels=1_000_000)
    assert raised.value.error == "image_too_large"
    with pytest.raises(files.ValidationFailed):  # between 1× and 2× the cap Pillow only warns
        make_renditions(io.BytesIO(image_bytes((1100, 1000))), max_pixels=1_000_000)


def test_product_images_are_public_and_attached_by_admins(
    client: FlaskClient, alice: dict[str, str], admin: dict[str, str]
) -> None:
    image = json_body(upload(client, admin, image_bytes(), "p.png", "image/png"))
    product = make_product("IMG-1")
    etag = client.get(f"{API}/products/{product.id}").headers["ETag"]
    assert_error(client.get(f"{API}/files/{image['id']}"), 404, "not_found")
    response = client.patch(
        f"{API}/products/{product.id}", json={"image_file_id": image["id"]},
        headers={**admin, "If-Match": etag},
    )  # fmt: skip
    assert response.status_code == 200, response.data
    public = client.get(f"{API}/files/{image['id']}/content")
    assert public.status_code == 200
    assert public.headers["Cache-Control"] == "public, no-cache"
    assert json_body(client.get(f"{API}/files/{image['id']}"))["purpose"] == "product_image"
    assert_error(client.delete(f"{API}/files/{image['id']}", headers=admin), 409, "file_in_use")


def test_a_product_image_must_be_a_readable_image(
    client: FlaskClient, alice: dict[str, str], admin: dict[str, str]
) -> None:
    csv_id = json_body(upload(client, admin, b"a,b\n", "a.csv", "text/csv"))["id"]
    for file_id, error in ((csv_id, "not_an_image"), (10**6, "unknown_file")):
        response = client.post(
            f"{API}/products", headers=admin,
            json={"sku": f"S-{file_id}", "name": "X", "price": "1.00", "currency": "USD",
                  "stock": 1, "image_file_id": file_id},
        )  # fmt: skip
        body = assert_error(response, 422, error)
        assert "image_file_id" in body["errors"]


def test_product_image_uploads_are_for_admins(client: FlaskClient, alice: dict[str, str]) -> None:
    response = upload(client, alice, image_bytes(), purpose="product_image")
    assert_error(response, 403, "forbidden")


def test_cleanup_deletes_unattached_product_images_and_expired_exports(
    app: Flask, client: FlaskClient, admin: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    def made(name: str, **form: str) -> int:
        color = {"kept": "red", "orphan": "green", "fresh": "blue", "own": "white"}[name]
        return int(json_body(upload(client, admin, image_bytes(color=color), **form))["id"])

    kept, orphan, fresh = (made(n, purpose="product_image") for n in ("kept", "orphan", "fresh"))
    own = made("own")
    make_product("P-1", image_file_id=kept)
    run_worker()
    old = utcnow() - timedelta(hours=25)
    File.update(created_at=old).where(File.id.in_([kept, orphan, own])).execute()
    export = File.create(owner=None, filename="e.csv", content_type="text/csv", size=4,
                         sha256=LocalStorage(app.config["FILES_DIR"]).put(io.BytesIO(b"x,y\n")).key,
                         purpose="export", expires_at=utcnow() - timedelta(minutes=1))  # fmt: skip
    orphan_keys = [
        File.get_by_id(orphan).sha256,
        *(v["sha256"] for v in File.get_by_id(orphan).variants.values()),
    ]
    stale = Path(app.config["FILES_DIR"]) / "incoming" / "upload-left-by-a-killed-worker"
    stale.write_bytes(b"x")
    os.utime(stale, (0, 0))
    assert files.cleanup() == {"orphans": 1, "expired_exports": 1, "incoming_removed": 1}
    assert not stale.exists()
    assert {f.id for f in File.select()} == {kept, fresh, own}
    root = Path(app.config["FILES_DIR"])
    remaining = {p.name for p in root.glob("??/??/*")}
    assert not remaining & {*orphan_keys, export.sha256}
    for record in File.select():
        assert record.sha256 in remaining
        assert {v["sha256"] for v in record.variants.values()} <= remaining


def test_sniffing_and_names() -> None:
    assert sniff(image_bytes(fmt="GIF")[:64]) == "image/gif"
    assert sniff("naïve,ü\n".encode() + "é".encode()[:1]) == "text/csv"  # cut mid-character
    assert sniff(b"\xff\xfe\x00\x01garbage") == "application/octet-stream"
    assert safe_filename("  ..hidden.csv") == "hidden.csv"
    assert safe_filename("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert safe_filename("\x00\x01") == "file"
    assert safe_filename("a" * 300) == "a" * 200
