"""Notifications: create them (pushed live after commit), list them, mark them read.

Other services call `notify` inside their own transaction; the
`notification.created` event, carrying the notification as the API returns it
(`NotificationSchema`), goes out on the user's channel (`user:{id}`) only once
that transaction commits, and not at all if it rolls back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backend.channels import user_channel
from backend.errors import ValidationFailed
from backend.events import publish_after_commit
from backend.models import Notification, User, utcnow
from backend.schemas.notifications import NotificationSchema
from backend.services.access import get_visible

CREATED_EVENT = "notification.created"
KIND_MAX_LENGTH = 64
TITLE_MAX_LENGTH = 200
_SCHEMA = NotificationSchema()  # one instance: building a schema costs more than a dump


def notify(
    *, user_id: int, kind: str, title: str, body: str = "", data: dict[str, Any] | None = None
) -> Notification:
    """Create a notification for a user and push it to them once it is committed.

    The row is written in the caller's current transaction (or at once when
    none is open). A `notification.created` event carrying it as the API
    returns it is published on `user:{user_id}` after that transaction
    commits; nothing is published if it rolls back.

    Args:
        user_id: Whom the notification is for.
        kind: A machine slug clients switch on (say, `order.shipped`), 1-64 characters.
        title: One line for humans, 1-200 characters.
        body: Optional longer text.
        data: Optional JSON-serialisable details (ids to link to, ...); `{}` when None.

    Returns:
        The created notification, unread.

    Raises:
        ValidationFailed: `kind` or `title` is empty or too long.
    """
    _check_length("kind", kind, KIND_MAX_LENGTH)
    _check_length("title", title, TITLE_MAX_LENGTH)
    notification = Notification.create(
        user=user_id, kind=kind, title=title, body=body, data=dict(data or {})
    )
    publish_after_commit(user_channel(user_id), CREATED_EVENT, _SCHEMA.dump(notification))
    return notification


def _check_length(name: str, value: str, maximum: int) -> None:
    if not 1 <= len(value) <= maximum:
        message = f"A notification's {name} must be 1 to {maximum} characters."
        raise ValidationFailed(message, errors={name: [message]})


def list_for(
    *, user: User, unread_only: bool, after: int | None, page: int, page_size: int
) -> tuple[list[Notification], int]:
    """Return one page of the user's notifications, newest (highest id) first, and the total.

    Args:
        user: Whose notifications; nobody else's are ever included.
        unread_only: Only those not read yet.
        after: Only ids greater than this one (a feed's last seen id); None for all.
        page: The 1-based page number.
        page_size: How many per page.

    Returns:
        The page's notifications and how many match in all pages.
    """
    query = Notification.select().where(Notification.user == user.id)
    if unread_only:
        query = query.where(Notification.read_at.is_null())
    if after is not None:
        query = query.where(Notification.id > after)
    query = query.order_by(Notification.id.desc())
    return list(query.paginate(page, page_size)), query.count()


def mark_read(*, user: User, notification_id: int) -> Notification:
    """Mark one of the user's notifications read (idempotent: the first `read_at` stays).

    Args:
        user: The owner; admins get no access to other users' notifications.
        notification_id: Which notification.

    Returns:
        The notification, with `read_at` set.

    Raises:
        NotFound: No such notification, or it belongs to someone else.
    """
    notification = _get_own(user, notification_id)
    if notification.read_at is None:
        now = utcnow()
        # Conditional, so a concurrent call cannot overwrite the first read_at.
        Notification.update(read_at=now, updated_at=now).where(
            Notification.id == notification.id, Notification.read_at.is_null()
        ).execute()
        notification = _get_own(user, notification_id)
    return notification


def mark_all_read(*, user: User) -> int:
    """Mark every unread notification of the user read, in one UPDATE.

    Already read notifications keep their `read_at`; other users' are untouched.

    Returns:
        How many notifications changed.
    """
    now = utcnow()
    query = Notification.update(read_at=now, updated_at=now).where(
        Notification.user == user.id, Notification.read_at.is_null()
    )
    return int(query.execute())


def _get_own(user: User, notification_id: int) -> Notification:
    return get_visible(
        Notification, notification_id, user=user, owner=Notification.user, admin_sees_all=False
    )


def purge_read(*, older_than: timedelta) -> int:
    """Delete notifications read longer ago than `older_than`; return how many."""
    cutoff = utcnow() - older_than
    deleted = Notification.delete().where(
        Notification.read_at.is_null(False) & (Notification.read_at < cutoff)
    )
    return int(deleted.execute())
