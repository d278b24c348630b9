"""An owner's `GET /orders/{id}` answered from the bytes this process sent last time.

Speeds up: `GET /orders/{id}` read by its owner (a Flet app polling an order's
status), measured by the `GET /api/v1/orders/{id} (Bearer)` rows of
`bench/rest.py`. Through `authenticated.order_view` each read still costs a
database round trip (the caller and the order in one query) and a schema dump;
on PostgreSQL that query is about a third of the request's CPU on the box.

What it does instead: one Redis round trip (shared with concurrent callers by
`round_trips` where installed) reads the session's state, the caller's cached
role and the order's version (`backend.cache`, namespace
`orders.cache_namespace(id)`). When the session is active, the account active,
and this process kept a 200 answer for the order tagged with that version and
owned by the caller, the same bytes and headers are sent again (304 on a
matching `If-None-Match`, as flask-smorest does).

Why it is correct: the answer is kept with the order's version read *before*
the view ran, and every write to an order, its status or its payment calls
`orders.changed_after_commit`, which replaces the version once it commits, in
every process; a read racing a write keeps the old version's tag, which is
never served again. Revocation is as strict as the main path's: the session's
state is read on every request (revoking writes it), deactivating an account
revokes its sessions and writes its role cache, and only the order's owner is
served from here: anyone else (an admin reading another's order, or a caller
the order is not visible to) goes through the view, whose refusals are the main
path's. A kept answer is dropped after `MAX_AGE_SECONDS` in case an
invalidation was lost (Redis unreachable while the write committed).

Whatever it cannot vouch for (no or bad token, the session's `last_seen_at`
due, Redis unreachable, nothing kept) goes to the view. Costs: at most
`MAX_ENTRIES` answers per process, and one Redis `SET` after each order write commits.
Tests: `tests/optimizations/test_order_cache.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from backend import cache
from backend.optimizations.authenticated import ORDER_ENDPOINT, SeenSessions, TokenVerifier
from backend.optimizations.catalog_cache import Rendered
from backend.redis_store import get_redis, round_trip
from backend.services import orders, roles, sessions

MAX_ENTRIES = 4096  # per process; a full cache starts again empty
MAX_AGE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Kept:
    """An order's 200 answer, the version it was computed under, and who owns the order."""

    version: bytes
    owner_id: int
    rendered: Rendered
    expires: float


class OrderCache:
    """The kept answers of one process, by order id."""

    def __init__(self) -> None:
        self.entries: dict[int, Kept] = {}

    def fresh(self, order_id: int, version: bytes | None) -> Kept | None:
        """Return the answer kept for `order_id` under `version`, if not too old."""
        kept = self.entries.get(order_id)
        if kept is None or version is None or kept.version != version:
            return None
        if kept.expires <= time.monotonic():
            del self.entries[order_id]
            return None
        return kept

    def keep(self, order_id: int, version: bytes, response: Any) -> None:
        """Keep `response` for `order_id` under `version` if it is a whole 200 JSON answer."""
        rendered = Rendered.capture(response)
        if rendered is None:
            return
        owner_id = json.loads(rendered.body)["user_id"]
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        expires = time.monotonic() + MAX_AGE_SECONDS
        self.entries[order_id] = Kept(version, int(owner_id), rendered, expires)


def _version(client: redis.Redis, order_id: int, read: bytes | None) -> bytes:
    """The order's version as read in the round trip, created when it had none."""
    if read is not None:
        return read
    return cache.read_version(client, orders.cache_namespace(order_id)).encode()


def cached_order_view(
    tokens: TokenVerifier, seen: SeenSessions, view: Callable[..., Any]
) -> Callable[..., Any]:
    """Return `GET /orders/{id}` answering owners from `OrderCache`, everything else by `view`."""
    kept_answers = OrderCache()

    def get_order(order_id: int) -> Any:
        claims = tokens.claims()
        if claims is None or seen.is_due(claims["sid"]):
            return view(order_id=order_id)  # the view notes the session as seen
        user_id, session_id = int(claims[tokens.identity_claim]), int(claims["sid"])
        client = get_redis()
        try:
            state, role, version = round_trip(client, [
                ("GET", sessions.state_key(session_id)),
                ("GET", roles.role_key(user_id)),
                ("GET", cache.version_key(orders.cache_namespace(order_id))),
            ])  # fmt: skip
            if state != sessions.ACTIVE or roles.role_from_cache(user_id, role) is None:
                return view(order_id=order_id)  # refused, or only the database knows
            kept = kept_answers.fresh(order_id, version)
            if kept is not None and kept.owner_id == user_id:
                return kept.rendered.replay()
            version = _version(client, order_id, version)  # read before the view runs
        except redis.RedisError:
            return view(order_id=order_id)
        response = view(order_id=order_id)
        kept_answers.keep(order_id, version, response)
        return response

    return get_order


def init_app(app: Flask, tokens: TokenVerifier, seen: SeenSessions) -> None:
    """Wrap the order view (after `authenticated.init_app` installed its own)."""
    view = app.view_functions[ORDER_ENDPOINT]
    app.view_functions[ORDER_ENDPOINT] = cached_order_view(tokens, seen, view)
