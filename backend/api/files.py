"""Files: upload (type-checked, size-limited), metadata, downloads with ranges, delete."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_smorest.pagination import PaginationParameters

from backend.api.blueprint import Blueprint
from backend.api.downloads import send_content
from backend.api.security import auth_required, caller, limit_body, optional_caller
from backend.schemas.files import (
    VERSION_CHARS,
    ContentQuerySchema,
    FileSchema,
    UploadSchema,
)
from backend.services import files
from backend.storage import receives_uploads

blp = Blueprint("files", __name__, url_prefix="/files", description="Stored files and images.")


@blp.route("", methods=["POST"])
@receives_uploads
@auth_required(blp)
@limit_body("FILES_MAX_BYTES")
@blp.arguments(UploadSchema, location="multipart")
@blp.response(201, FileSchema)
def upload_file(upload: dict[str, Any]) -> Any:
    """Upload a file (multipart field `file`).

    The type is sniffed from the bytes: 415 when it is not allowed (images,
    CSV and PDF by default) or not what the name or declared type says; 413
    over `FILES_MAX_BYTES`. Images get `thumb`, `mobile` and `desktop` WebP
    renditions from a background job (`rendition_job_id`).
    """
    part = upload["file"]
    record = files.upload(
        owner=caller(), stream=part.stream, filename=part.filename,
        declared_type=part.content_type, purpose=upload["purpose"],
    )  # fmt: skip
    return record, 201, {"Location": url_for("files.get_file", file_id=record.id)}


@blp.route("")
@auth_required(blp)
@blp.response(200, FileSchema(many=True))
@blp.paginate()
def list_files(pagination_parameters: PaginationParameters) -> Any:
    """List the caller's files, newest first (admins: everyone's)."""
    page, total = files.list_files(
        user=caller(), page=pagination_parameters.page, page_size=pagination_parameters.page_size
    )
    pagination_parameters.item_count = total
    return page


@blp.route("/<int:file_id>")
@blp.response(200, FileSchema)
def get_file(file_id: int) -> Any:
    """Return a file's metadata: own files (admins: all); an active product's image is public."""
    return files.get_file(viewer=optional_caller(), file_id=file_id)


@blp.route("/<int:file_id>/content")
@blp.arguments(ContentQuerySchema, location="query")
@blp.response(200, description="The bytes (206 for a `Range`, 304 for a matching ETag)")
@blp.alt_response(206, description="Partial content")
@blp.alt_response(416, description="Range not satisfiable")
def download(query: dict[str, Any], file_id: int) -> Response:
    """Download a file, or one of its renditions (`variant` or `w`).

    The ETag is the content's sha256. Until a rendition is ready the original
    is sent. URLs carrying `v` (from `url` in the metadata) are immutable.
    """
    found = files.content(
        viewer=optional_caller(), file_id=file_id, variant=query.get("variant"),
        width=query.get("w"),
    )  # fmt: skip
    versioned = query.get("v") == found.key[:VERSION_CHARS]
    return send_content(found, versioned=versioned)


@blp.route("/<int:file_id>", methods=["DELETE"])
@blp.alt_response(409, description="`file_in_use`: a product shows this image.")
@auth_required(blp)
@blp.response(204)
def delete_file(file_id: int) -> None:
    """Delete a file (owner or admin). 409 `file_in_use` while a product shows it."""
    files.delete_file(user=caller(), file_id=file_id)
