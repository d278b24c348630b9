"""Background jobs: list, read and cancel the caller's jobs (admins: all)."""

from __future__ import annotations

from typing import Any

from flask_smorest.pagination import PaginationParameters

from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller
from backend.schemas.jobs import JobSchema
from backend.services import job_tracking

blp = Blueprint("jobs", __name__, url_prefix="/jobs", description="Background jobs.")


@blp.route("")
@auth_required(blp)
@blp.response(200, JobSchema(many=True))
@blp.paginate()
def list_jobs(pagination_parameters: PaginationParameters) -> Any:
    """List the caller's jobs, newest first (admins: everyone's)."""
    page, total = job_tracking.list_jobs(
        user=caller(), page=pagination_parameters.page, page_size=pagination_parameters.page_size
    )
    pagination_parameters.item_count = total
    return page


@blp.route("/<job_id>")
@auth_required(blp)
@blp.response(200, JobSchema)
def get_job(job_id: str) -> Any:
    """Return a job: status, progress, result or error."""
    return job_tracking.get_job(user=caller(), job_id=job_id)


@blp.route("/<job_id>/cancel", methods=["POST"])
@blp.alt_response(409, description="`job_finished`: the job already ended.")
@auth_required(blp)
@blp.response(200, JobSchema)
def cancel_job(job_id: str) -> Any:
    """Cancel a job.

    A queued job is cancelled at once; a running one is asked to stop
    (`cancel_requested`) and becomes `cancelled` when its worker stops it.
    409 `job_finished` once it ended.
    """
    return job_tracking.cancel(user=caller(), job_id=job_id)
