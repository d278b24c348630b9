"""The live channels events are published on, named in one place.

Every user has a private channel, `user:{id}`; `products` is a public topic any
signed-in caller may follow; `admin` is for admins. Who may read which channel
is decided in `backend.services.realtime`.
"""

from __future__ import annotations

PRODUCTS = "products"
ADMIN = "admin"
USER_PREFIX = "user:"
PUBLIC_TOPICS = frozenset({PRODUCTS})
ADMIN_TOPICS = frozenset({ADMIN})


# Not an event channel: the Redis Pub/Sub channel that carries the ids of revoked
# sessions, so every process's SSE hub ends their streams at once.
REVOKED_SESSIONS = "auth:revoked"
# Likewise the ids of users whose rights changed (a role change): their open
# streams end at once, and the reconnect is authorised anew.
REAUTHORIZE_USERS = "auth:reauthorize"


def user_channel(user_id: int) -> str:
    """Return the private channel of the user with id `user_id`."""
    return f"{USER_PREFIX}{user_id}"
