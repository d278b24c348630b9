"""The durable record of a background job, kept in step with RQ by the job layer."""

from __future__ import annotations

from typing import Any

from peewee import CharField, ForeignKeyField, IntegerField, TextField

from backend.models.base import BaseModel, UTCDateTimeField
from backend.models.fields import JSONTextField
from backend.models.user import User

JOB_STATUSES = ("queued", "started", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


def progress_of(done: int, total: int | None, message: str) -> dict[str, Any]:
    """`{done, total, percent, message}` as the API and `job.*` events carry a job's progress."""
    percent = round(100 * done / total, 1) if total else None
    return {"done": done, "total": total, "percent": percent, "message": message}


class Job(BaseModel):
    """A job's history, owner and progress; outlives RQ's own result TTL."""

    id = CharField(max_length=64, primary_key=True)  # type: ignore[assignment]  # the RQ job id
    user = ForeignKeyField(User, null=True, backref="jobs", on_delete="SET NULL")
    user_id: int | None
    kind = CharField(max_length=64, index=True)
    queue = CharField(max_length=32, default="default")
    status = CharField(max_length=16, default="queued", index=True)
    progress_done = IntegerField(default=0)
    progress_total = IntegerField(null=True)
    progress_message = CharField(max_length=300, default="")
    result = JSONTextField(null=True)
    error = TextField(null=True)
    cancel_requested = UTCDateTimeField(null=True)
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    func = CharField(max_length=200, null=True)  # the job function's dotted path
    args = JSONTextField(null=True)  # its arguments, as JSON: what a retry runs again
    retry_of = CharField(max_length=64, null=True)  # the job this one retries
    retried_as = CharField(max_length=64, null=True)  # the job that retries this one

    @property
    def progress(self) -> dict[str, Any]:
        """`{done, total, percent, message}` as the API and `job.*` events carry it."""
        return progress_of(self.progress_done, self.progress_total, self.progress_message)

    @property
    def cancel_requested_flag(self) -> bool:
        """Whether a stop was asked for while the job ran."""
        return self.cancel_requested is not None
