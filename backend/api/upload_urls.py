"""Upload URLs for Flet's `FilePicker.upload`: signed, single-use, raw body, no token.

`POST /files/upload-urls` (or `/products/import/upload-url`, admins) returns an
absolute URL; a PUT of the raw bytes to it, with no `Authorization` and no
`Content-Type`, stores the file exactly as `POST /files` does (or starts the
import as `POST /products/import` does). See `backend.services.upload_urls`.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller, raw_body, session_id
from backend.schemas.files import FileSchema
from backend.schemas.jobs import JobSchema
from backend.schemas.upload_urls import (
    ImportUploadUrlRequestSchema,
    UploadOutcomeSchema,
    UploadUrlRequestSchema,
    UploadUrlSchema,
)
from backend.services import upload_urls
from backend.services.upload_urls import FILE, IMPORT, TOKEN_MAX_CHARS, MadeUrl

blp = Blueprint(
    "upload_urls", __name__, url_prefix="",
    description="Signed single-use URLs that take a file's raw bytes by PUT, without a token "
    "(Flet's `FilePicker.upload`).",
)  # fmt: skip

RAW_BODY = {
    "required": True,
    "description": "The file's raw bytes (any or no `Content-Type`; chunked or with a length)",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
TOKEN_ERRORS = {
    403: "`invalid_upload_url` (tampered, another kind of URL, unknown), or the account is "
    "deactivated or its sign-in ended.",
    409: "`upload_url_used`: the URL was used already (or an upload to it is under way).",
    410: "`expired`: past `expires_at`; ask for a new URL.",
    413: "The body is larger than the URL's `max_bytes`.",
}

FILE_ERRORS = {
    415: "The bytes are not an allowed type, or not the declared one.",
    422: "`empty_file`, `invalid_image`, `image_too_large`.",
}


def _made(made: MadeUrl, endpoint: str) -> tuple[dict[str, Any], int]:
    url = url_for(endpoint, token=made.token, _external=True)
    return {"upload_id": made.upload_id, "upload_url": url, "method": made.method,
            "expires_at": made.expires_at, "max_bytes": made.max_bytes}, 201  # fmt: skip


def _documented_errors(statuses: dict[int, str]) -> Any:
    def decorator(view: Any) -> Any:
        for status, description in statuses.items():
            view = blp.alt_response(status, description=description)(view)
        return view

    return decorator


@blp.route("/files/upload-urls", methods=["POST"])
@blp.alt_response(413, description="`size` is over `FILES_MAX_BYTES`.")
@auth_required(blp)
@blp.arguments(UploadUrlRequestSchema)
@blp.response(201, UploadUrlSchema)
def create_file_upload_url(payload: dict[str, Any]) -> Any:
    """Make a URL that takes one file's raw bytes by PUT, without a token.

    For Flet's `FilePicker.upload(FilePickerUploadFile(name, upload_url, method="PUT"))`.
    The URL is valid `UPLOAD_URL_TTL_SECONDS` (900), once, for this user and sign-in, this
    filename and declared type, and at most `size` bytes (else `FILES_MAX_BYTES`).
    """
    made = upload_urls.issue(user=caller(), session_id=session_id(), kind=FILE, **payload)
    return _made(made, "upload_urls.put_file")


@blp.route("/files/upload-urls/<int:upload_id>")
@auth_required(blp)
@blp.response(200, UploadOutcomeSchema)
def get_upload_outcome(upload_id: int) -> Any:
    """Say what became of an upload URL: `pending`, `completed` with its file or job, `expired`.

    Flet's `FilePicker.upload` reports progress but not the server's answer: poll this
    after `on_upload` reported 100% to learn the new file's id (or the import job).
    """
    return upload_urls.outcome(user=caller(), upload_id=upload_id)


@blp.route(f"/files/uploads/<string(maxlength={TOKEN_MAX_CHARS}):token>", methods=["PUT"])
@_documented_errors({**TOKEN_ERRORS, **FILE_ERRORS})
@blp.doc(requestBody=RAW_BODY)
@blp.response(201, FileSchema)
def put_file(token: str) -> Any:
    """Upload a file's raw bytes to an upload URL (no Authorization, no Content-Type).

    Stored exactly as `POST /files` stores an upload: type sniffed from the bytes,
    renditions for images, private to the URL's user. A failed upload leaves the URL
    usable until it expires; a stored one spends it.
    """
    grant = upload_urls.verify(token=token, kind=FILE)
    record = upload_urls.receive_file(grant=grant, stream=raw_body(max_bytes=grant.max_bytes))
    return record, 201, {"Location": url_for("files.get_file", file_id=record.id)}


@blp.route("/products/import/upload-url", methods=["POST"])
@blp.alt_response(413, description="`size` is over `IMPORT_MAX_BYTES`.")
@auth_required(blp, role="admin")
@blp.arguments(ImportUploadUrlRequestSchema, required=False)
@blp.response(201, UploadUrlSchema)
def create_import_upload_url(payload: dict[str, Any]) -> Any:
    """Make a URL that takes a products CSV by PUT, without a token, and imports it (admin).

    The PUT answers as `POST /products/import` does: 202 with the job.
    """
    made = upload_urls.issue(user=caller(), session_id=session_id(), kind=IMPORT, **payload)
    return _made(made, "upload_urls.put_import")


@blp.route(f"/products/import/uploads/<string(maxlength={TOKEN_MAX_CHARS}):token>", methods=["PUT"])
@_documented_errors({**TOKEN_ERRORS, 422: "`invalid_csv`: empty, not UTF-8, wrong header."})
@blp.doc(requestBody=RAW_BODY)
@blp.response(202, JobSchema)
def put_import(token: str) -> Any:
    """Upload a products CSV's raw bytes to an import upload URL; answers 202 with the job."""
    grant = upload_urls.verify(token=token, kind=IMPORT)
    job = upload_urls.receive_import(grant=grant, stream=raw_body(max_bytes=grant.max_bytes))
    return job, 202, {"Location": url_for("jobs.get_job", job_id=job.id)}
