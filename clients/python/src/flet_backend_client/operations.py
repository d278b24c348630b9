"""Operating the backend (admin): the audit trail and the jobs dashboard, part of `AsyncClient`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from flet_backend_client.models import AuditEvent, Page, _absolute
from flet_backend_client.session import Session


def _instant(name: str, value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 with its offset (the server refuses naive ones)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a timezone), not naive.")
    return value.isoformat()


class Operations:
    """The audit trail (`/audit`) and the jobs dashboard link (`/admin/jobs-dashboard`)."""

    _session: Session

    async def list_audit_events(
        self,
        *,
        actor_id: int | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> Page[AuditEvent]:
        """List the audit trail, newest first (admin); the filters combine.

        Args:
            actor_id: Only what this user did.
            action: Only this action, e.g. `auth.login`.
            target: Only what was done to this `type:id`, e.g. `order:12` or `user:3`.
            since: At or after this time (an aware datetime, any offset).
            until: Before this time (an aware datetime, any offset).
            after: Only entries with a greater id (a feed's cursor: the newest id seen).
            page: Page number from 1.
            page_size: Entries per page (at most 100).

        Raises:
            ForbiddenError: The caller is not an admin.
            ValidationError: A bad filter, e.g. `target` not `type:id`, or `since` after `until`.
            ValueError: `since` or `until` is naive (no timezone); nothing was sent.
        """
        params: dict[str, Any] = {
            "actor_id": actor_id, "action": action, "target": target,
            "since": _instant("since", since), "until": _instant("until", until),
            "after": after, "page": page, "page_size": page_size,
        }  # fmt: skip
        response = await self._session.request("GET", "/audit", params=params, retries=2)
        items = [AuditEvent.from_json(item) for item in response.json()]
        return Page.from_header(items, response.headers.get("X-Pagination"), page, page_size)

    async def iter_audit_events(
        self,
        *,
        actor_id: int | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[AuditEvent]:
        """Yield every matching audit entry, newest first, walking all pages (admin).

        Filters as `list_audit_events`. Entries recorded while the walk goes on push
        older ones to later pages: those seen already are skipped, so each entry is
        yielded once (and the new ones are not: start again with `after=` the
        first id to read them).
        """
        page = 1
        oldest: int | None = None
        while True:
            result = await self.list_audit_events(
                actor_id=actor_id, action=action, target=target, since=since, until=until,
                after=after, page=page, page_size=page_size,
            )  # fmt: skip
            for event in result.items:
                if oldest is None or event.id < oldest:
                    oldest = event.id
                    yield event
            if not result.items or page >= result.total_pages:
                return
            page += 1

    async def jobs_dashboard_link(self) -> str:
        """Return a one-use link that opens the jobs dashboard (rq-dashboard) in a browser (admin).

        Open it at once (in Flet 1.0: `await ft.UrlLauncher().launch_url(url)`): it lasts
        a minute and is spent on first use, signing that browser in to `/admin/rq` for
        15 minutes (`DASHBOARD_COOKIE_SECONDS`). Ask for a new link each time.

        Raises:
            ForbiddenError: The caller is not an admin.
        """
        body = await self._session.json("POST", "/admin/jobs-dashboard")
        return _absolute(self._session.base_url, body["url"])
