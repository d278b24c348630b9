"""Upload URLs in the service: the claim is atomic, and a lost race says why."""

from __future__ import annotations

import io

import pytest
from flask import Flask

from backend.errors import Conflict, Forbidden, Gone
from backend.models import AuthSession, File, UploadUrl, User, utcnow
from backend.services import upload_urls
from backend.services.upload_urls import FILE

CSV = b"sku,name\nA-1,Tea\n"


@pytest.fixture
def grant(app: Flask, user: dict[str, str]) -> UploadUrl:
    session = AuthSession.get()
    made = upload_urls.issue(
        user=User.get_by_id(session.user_id), session_id=session.id, kind=FILE,
        filename="prices.csv",
    )  # fmt: skip
    return upload_urls.verify(token=made.token, kind=FILE)


def test_an_upload_that_lost_the_race_since_verify_is_409(grant: UploadUrl) -> None:
    UploadUrl.update(used_at=utcnow()).execute()  # another PUT claimed it meanwhile
    with pytest.raises(Conflict) as refused:
        upload_urls.receive_file(grant=grant, stream=io.BytesIO(CSV))
    assert refused.value.error == "upload_url_used"
    assert File.select().count() == 0


def test_a_url_that_expired_since_verify_is_410(grant: UploadUrl) -> None:
    UploadUrl.update(expires_at=utcnow()).execute()
    with pytest.raises(Gone):
        upload_urls.receive_file(grant=grant, stream=io.BytesIO(CSV))


def test_a_failed_upload_gives_the_claim_back(grant: UploadUrl) -> None:
    with pytest.raises(Exception, match="empty"):
        upload_urls.receive_file(grant=grant, stream=io.BytesIO(b""))
    assert UploadUrl.get().used_at is None
    upload_urls.receive_file(grant=grant, stream=io.BytesIO(CSV))
    assert UploadUrl.get().used_at is not None


def test_a_url_deleted_since_verify_is_403(grant: UploadUrl) -> None:
    UploadUrl.delete().execute()  # purged meanwhile
    with pytest.raises(Forbidden) as refused:
        upload_urls.receive_file(grant=grant, stream=io.BytesIO(CSV))
    assert refused.value.error == "invalid_upload_url"
