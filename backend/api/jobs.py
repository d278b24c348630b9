"""Background jobs: list, read and cancel the caller's jobs (admins: all)."""

from __future__ import annotations

from typing import Any

from flask import url_for
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


@blp.route("/<job_id>/retry", methods=["POST"])
@blp.alt_response(
    409,
    description="`job_not_retryable`: not failed or cancelled, a kind that "
    "is not retried, retried already, past the retry window, or its input is gone.",
)
@auth_required(blp)
@blp.response(202, JobSchema)
def retry_job(job_id: str) -> Any:
    """Run a failed or cancelled job again, as a new job; answers 202 with it.

    Owner or admin. Imports (on their kept CSV), order exports and image
    renditions can be retried, within `JOBS_RETRY_WINDOW_HOURS` (24) of the
    job's end; a job is retried once (its retry may be retried in turn).
    """
    job = job_tracking.retry(user=caller(), job_id=job_id)
    return job, 202, {"Location": url_for("jobs.get_job", job_id=job.id)}
