"""Authorization in one place: roles, and "load it if the caller may see it".

Routes never compare owners themselves: they call `get_visible` (404 when
missing or someone else's, never revealing which) or `require_role`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from peewee import Expression, Field, Model, ModelSelect

from backend.errors import Forbidden, NotFound
from backend.models import User

M = TypeVar("M", bound=Model)


def is_admin(user: User) -> bool:
    """Return whether `user` has the admin role."""
    return is_admin_role(user.role)


def is_admin_role(role: str) -> bool:
    """Return whether `role` is the admin role."""
    return role == "admin"


def require_role(user: User, role: str) -> None:
    """Raise `Forbidden` unless `user` has `role` (admins have every role)."""
    if user.role != role and not is_admin(user):
        raise Forbidden(f"This action needs the {role} role.")


def get_visible(
    model: type[M],
    object_id: Any,
    *,
    user: User,
    owner: Field,
    admin_sees_all: bool = True,
    only: Expression | None = None,
    query: ModelSelect[Any] | None = None,
) -> M:
    """Return `model[object_id]` if `user` may see it, else raise `NotFound`.

    Users see rows whose `owner` field is theirs; admins see every row unless
    `admin_sees_all` is False (personal things such as device sessions).
    `only` narrows further (say, to rows not deleted); `query` is the select
    to narrow (say, one that joins related rows), `model.select()` by default.
    Someone else's row is reported exactly like a missing one.
    """
    selected = (model.select() if query is None else query).where(
        model._meta.primary_key == object_id
    )
    if only is not None:
        selected = selected.where(only)
    if not (admin_sees_all and is_admin(user)):
        selected = selected.where(owner == user.id)
    found: M | None = selected.first()
    if found is None:
        raise NotFound(f"{model.__name__} {object_id} not found.")
    return found
