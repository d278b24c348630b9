"""Notification jobs: tell users things from the background."""

from __future__ import annotations

from typing import Any

from backend.db import db
from backend.services import notifications
from jobs.base import job


@job
def notify_user(
    user_id: int, kind: str, title: str, body: str = "", data: dict[str, Any] | None = None
) -> int:
    """Create a notification for a user (pushed live as `notification.created`); return its id."""
    with db.atomic():
        notification = notifications.notify(
            user_id=user_id, kind=kind, title=title, body=body, data=data
        )
    return int(notification.id)
