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


def user_channel(user_id: int) -> str:
    """Return the private channel of the user with id `user_id`."""
    return f"{USER_PREFIX}{user_id}"
