"""Who may open the jobs dashboard (`/admin/rq`): admins, through a one-use link.

Browsers cannot send our Bearer token, so an admin's app asks for a link
(`issue_ticket`): a random ticket, stored hashed in Redis for
`TICKET_TTL_SECONDS` and spent on first use. The web layer trades it for a
short-lived signed cookie naming the admin and their session; every
dashboard request checks that session and role again (`admin_for_session`),
so a logout, a deactivation or a demotion shuts the dashboard at once.
"""

from __future__ import annotations

import secrets

from backend.errors import Gone, Unauthorized
from backend.models import User
from backend.redis_store import get_redis
from backend.services import sessions
from backend.services.access import require_role
from backend.services.tokens import digest

TICKET_TTL_SECONDS = 60
_TICKET_KEY = "dashboard:ticket:{}"


def issue_ticket(*, user: User, session_id: int) -> str:
    """Return a one-use ticket that opens the dashboard as `user` in `session_id`.

    Raises `Forbidden` unless `user` is an admin.
    """
    require_role(user, "admin")
    ticket = secrets.token_urlsafe(32)
    value = f"{user.id}:{session_id}"
    get_redis().set(_TICKET_KEY.format(digest(ticket)), value, ex=TICKET_TTL_SECONDS)
    return ticket


def redeem_ticket(ticket: str) -> tuple[User, int]:
    """Spend `ticket`; return the admin and the session it was issued in.

    Raises `Gone` (`expired`) for a ticket that was used, has expired or never
    existed, and what `admin_for_session` raises.
    """
    raw = get_redis().getdel(_TICKET_KEY.format(digest(ticket)))
    if not isinstance(raw, bytes | str):
        raise Gone(
            "This dashboard link was used or has expired; ask for a new one.", error="expired"
        )
    text = raw.decode() if isinstance(raw, bytes) else raw
    user_id, _, session_id = text.partition(":")
    return admin_for_session(user_id=int(user_id), session_id=int(session_id)), int(session_id)


def admin_for_session(*, user_id: int, session_id: int) -> User:
    """Return the admin if their session is still active and they are still an active admin.

    Raises `Unauthorized` for an ended session or a missing or inactive user,
    `Forbidden` for a user who is no longer an admin.
    """
    if not sessions.is_active(session_id, note_seen=False):
        raise Unauthorized("This session has ended; sign in again.", error="token_revoked")
    user = User.get_or_none((User.id == user_id) & User.is_active)
    if user is None:
        raise Unauthorized("The account no longer exists or is deactivated.")
    require_role(user, "admin")
    return user
