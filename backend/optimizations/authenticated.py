"""The authenticated path, made cheap: what every request with a Bearer token pays.

Speeds up: every view under `auth_required` (and `optional_caller`), and
`GET /orders/{id}`; measured by the `GET /api/v1/orders/{id} (Bearer)` and
`GET /api/v1/users/me (Bearer)` rows of `bench/rest.py`. Through the main path
an authenticated request spent ~0.2 ms in flask-jwt-extended decoding its token
(three PyJWT passes) and ~0.3 ms in Peewee rendering `SELECT ... FROM user
WHERE id = ?` again; the order view twice that rendering its two queries.

What it does instead:

- A token is verified once per process with PyJWT directly, with the settings
  flask-jwt-extended uses (key, algorithms, leeway, audience, issuer, identity
  claim) plus its claim checks (`type` is `access`) and ours (`sid` an
  integer); its claims are then kept in memory, keyed by the whole signed
  token, until it expires. The expiry is checked on every request.
- Revocation is not cached: each request still asks Redis whether its session
  is active (`sessions.is_active`, the main path's own check, one round trip)
  and reads its user from the database, so a revoked session, a deactivated
  user or a demoted admin is refused or re-checked on the very next request,
  in every process. Only the `last_seen_at` bookkeeping is skipped when this
  process did it for the session under a minute ago (`SeenSessions`).
- The user is read with `PreparedSelect`: SQL Peewee rendered once per kind of
  database, run with each request's values. `GET /orders/{id}` is answered by
  `order_view` with one such query for the caller, the order (same rule as
  `access.get_visible`), its lines and its payment, where the main path makes
  three, and dumped with the same `OrderSchema`.

Whenever this path cannot vouch for a request (no or odd header, bad or
expired token, revoked session, inactive user) it answers None and the main
path (flask-jwt-extended) handles the request, so every refusal keeps its exact
401 answer. Costs: two bounded dicts per process (verified tokens, sessions
seen). Tests: `tests/optimizations/test_authenticated_fastpath.py` (layer on and off).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import jwt as pyjwt
from flask import Flask, jsonify, request
from peewee import JOIN, Field, Model, ModelSelect

from backend.api.security import FAST_CLAIMS, FAST_VERIFIER, Authenticated, remember_caller
from backend.db import db
from backend.errors import NotFound
from backend.models import Order, OrderLine, Payment, User
from backend.schemas.catalog import OrderSchema
from backend.services import sessions

M = TypeVar("M", bound=Model)
MAX_VERIFIED_TOKENS = 10_000  # ~3 MB; when full the dict starts over
MAX_SEEN_SESSIONS = 10_000
ORDER_ENDPOINT = "orders.get_order"
_STAND_IN = -7_300_000_000  # values no request binds, to find where each value goes


@dataclass(frozen=True)
class _Rendered:
    sql: str
    slots: list[int | None]  # per SQL parameter: the index of the value bound there, or None
    constants: list[Any]  # per SQL parameter: the value rendered (used where slot is None)
    columns: list[Field]


class PreparedSelect:
    """A Peewee SELECT rendered to SQL once per kind of database, run with new values each call.

    Peewee spends ~0.3 ms rendering even a one-row select; the SQL only depends on
    the query's shape and the database's dialect.

    Args:
        build: Returns the query given its values (called once per dialect with
            stand-ins, to render it). Select whole models, fields in their order.
        arity: How many values `build` takes.
    """

    def __init__(self, build: Callable[..., ModelSelect[Any]], arity: int) -> None:
        self._build = build
        self._arity = arity
        self._rendered: dict[type, _Rendered] = {}

    def values(self, *values: Any) -> list[list[Any]]:
        """Run the query with `values` (in `build`'s order); return each row's Python values."""
        rendered = self._rendered.get(type(db.obj)) or self._render()
        params = [
            constant if slot is None else values[slot]
            for slot, constant in zip(rendered.slots, rendered.constants, strict=True)
        ]
        converters = [column.python_value for column in rendered.columns]
        return [
            [convert(value) for convert, value in zip(converters, row, strict=True)]
            for row in db.execute_sql(rendered.sql, params).fetchall()
        ]

    def _render(self) -> _Rendered:
        stand_ins = [_STAND_IN - i for i in range(self._arity)]
        query = self._build(*stand_ins)
        sql, params = query.sql()
        slots = [stand_ins.index(p) if p in stand_ins else None for p in params]
        rendered = _Rendered(sql, slots, list(params), list(query.selected_columns))
        self._rendered[type(db.obj)] = rendered
        return rendered


def loaded(model: type[M], values: list[Any]) -> M:
    """Return a `model` instance from a row of its fields' values, as Peewee loads one."""
    fields = model._meta.sorted_fields
    instance = model(__no_default__=1, **{f.name: v for f, v in zip(fields, values, strict=True)})
    # As Peewee's cursor wrapper does: a loaded row is not dirty.
    instance._dirty.clear()  # type: ignore[attr-defined]
    return instance


ACTIVE_USER = PreparedSelect(
    lambda user_id: User.select().where((User.id == user_id) & User.is_active), 1
)
# The caller and the order in one round trip: the caller if active, the order if it
# is theirs (or the caller is an admin: `access.get_visible`'s rule), its lines and its
# payment (repeated on each line's row).
CALLER_AND_ORDER = PreparedSelect(
    lambda user_id, order_id: (
        User.select(User, Order, OrderLine, Payment)
        .join(
            Order,
            JOIN.LEFT_OUTER,
            on=(Order.id == order_id) & ((Order.user == User.id) | (User.role == "admin")),
        )
        .join(OrderLine, JOIN.LEFT_OUTER, on=(OrderLine.order == Order.id))
        .switch(Order)
        .join(Payment, JOIN.LEFT_OUTER, on=(Payment.order == Order.id))
        .where((User.id == user_id) & User.is_active)
        .order_by(OrderLine.id)
    ),
    2,
)


def active_user(user_id: int) -> User | None:
    """Return the user if it exists and is active (what `_load_user` in security answers)."""
    rows = ACTIVE_USER.values(user_id)
    return loaded(User, rows[0]) if rows else None


class TokenVerifier:
    """Verifies access tokens as flask-jwt-extended configures it, each token once per process.

    Args:
        app: The app whose `JWT_*` settings (set by flask-jwt-extended's `init_app`) apply.
    """

    def __init__(self, app: Flask) -> None:
        config = app.config
        self.header_name = str(config["JWT_HEADER_NAME"])
        self.prefix = f"{config['JWT_HEADER_TYPE']} "
        self.key = config["JWT_SECRET_KEY"]
        self.algorithms = list(config["JWT_DECODE_ALGORITHMS"] or [config["JWT_ALGORITHM"]])
        self.audience = config["JWT_DECODE_AUDIENCE"]
        self.issuer = config["JWT_DECODE_ISSUER"]
        leeway = config["JWT_DECODE_LEEWAY"]
        self.leeway = float(leeway.total_seconds() if hasattr(leeway, "total_seconds") else leeway)
        self.identity_claim = str(config["JWT_IDENTITY_CLAIM"])
        self.verify_sub = bool(config["JWT_VERIFY_SUB"])
        self.verified: dict[str, dict[str, Any]] = {}

    def claims(self) -> dict[str, Any] | None:
        """Return the claims of this request's access token, or None if not plainly valid."""
        return self.claims_of(request.headers.get(self.header_name))

    def claims_of(self, header: str | None) -> dict[str, Any] | None:
        """Return the claims of the access token in `header` (its whole value), or None."""
        if header is None or not header.startswith(self.prefix):
            return None
        token = header[len(self.prefix) :]
        claims = self.verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if claims is None:
                return None
        if claims["exp"] <= time.time() - self.leeway:
            self.verified.pop(token, None)
            return None
        return claims

    def _verify(self, token: str) -> dict[str, Any] | None:
        if not token or any(c in token for c in " ,\t"):
            return None
        try:
            claims: dict[str, Any] = pyjwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "verify_aud": self.audience is not None,
                    "verify_sub": self.verify_sub,
                    "require": ["exp"],  # a token that never expires is the library's to judge
                },
            )
        except pyjwt.PyJWTError:
            return None
        usable = (
            self.identity_claim in claims
            and claims.get("type", "access") == "access"
            and type(claims.get("sid")) is int
        )
        if not usable:
            return None
        if len(self.verified) >= MAX_VERIFIED_TOKENS:
            self.verified.clear()
        self.verified[token] = claims
        return claims


class SeenSessions:
    """When this process last had `sessions.is_active` bring a session's `last_seen_at` up to date.

    The database write stays throttled across processes in Redis; this only
    spares the repeat `SET NX` for a session this process noted under a minute ago.
    """

    def __init__(self) -> None:
        self.due: dict[int, float] = {}

    def is_due(self, session_id: int) -> bool:
        """Return whether `session_id` is due to be noted as seen (without noting it)."""
        return self.due.get(session_id, 0.0) <= time.monotonic()

    def note_due(self, session_id: int) -> bool:
        """Return whether to note `session_id` as seen now (and count it as noted if so)."""
        now = time.monotonic()
        if self.due.get(session_id, 0.0) > now:
            return False
        if len(self.due) >= MAX_SEEN_SESSIONS:
            self.due.clear()
        self.due[session_id] = now + sessions.SEEN_THROTTLE_SECONDS
        return True


def session_claims(tokens: TokenVerifier, seen: SeenSessions) -> dict[str, Any] | None:
    """Return the claims of this request's token if its session is active, else None."""
    claims = tokens.claims()
    if claims is None:
        return None
    sid = claims["sid"]
    if not sessions.is_active(sid, note_seen=seen.note_due(sid)):
        return None
    return claims


def fast_verifier(tokens: TokenVerifier, seen: SeenSessions) -> Callable[[], Authenticated | None]:
    """Return the `FAST_VERIFIER` for `backend.api.security`: the caller, or None to defer."""

    def verify() -> Authenticated | None:
        claims = session_claims(tokens, seen)
        if claims is None:
            return None
        user = active_user(int(claims[tokens.identity_claim]))
        if user is None:
            return None
        return Authenticated(user=user, claims=dict(claims))

    return verify


def caller_and_order(*, user_id: int, order_id: int) -> tuple[User, Order | None] | None:
    """Return the active caller and the order they may see (None if not), in one query.

    None when the user is missing or inactive. The order comes with its lines
    and its payment (None until paid).
    """
    rows = CALLER_AND_ORDER.values(user_id, order_id)
    if not rows:
        return None
    user_width = len(User._meta.sorted_fields)
    lines_from = user_width + len(Order._meta.sorted_fields)
    payment_from = lines_from + len(OrderLine._meta.sorted_fields)
    user = loaded(User, rows[0][:user_width])
    if rows[0][user_width] is None:
        return user, None
    order = loaded(Order, rows[0][user_width:lines_from])
    lines = [
        loaded(OrderLine, row[lines_from:payment_from])
        for row in rows
        if row[lines_from] is not None
    ]
    # What `prefetch` does: the instance's backref attribute holds the list.
    cast(Any, order).lines = lines
    paid = rows[0][payment_from:]
    order.payment = loaded(Payment, paid) if paid[0] is not None else None
    return user, order


def order_view(
    tokens: TokenVerifier, seen: SeenSessions, main_view: Callable[..., Any]
) -> Callable[..., Any]:
    """Return `GET /orders/{id}` answering as `main_view` does, caller and order in one query.

    Whatever it cannot vouch for (no or bad token, ended session, inactive
    user) goes to `main_view`, so every refusal is the main path's.
    """
    schema = OrderSchema()

    def get_order(order_id: int) -> Any:
        claims = session_claims(tokens, seen)
        found = None
        if claims is not None:
            found = caller_and_order(user_id=int(claims[tokens.identity_claim]), order_id=order_id)
        if found is None:
            return main_view(order_id=order_id)
        user, order = found
        remember_caller(Authenticated(user=user, claims=dict(claims or {})))
        if order is None:
            raise NotFound(f"Order {order_id} not found.")
        return jsonify(schema.dump(order))

    return get_order


def init_app(app: Flask) -> tuple[TokenVerifier, SeenSessions]:
    """Install the fast verifier of access tokens and the fast order read.

    Runs after `backend.api.init_app` (flask-jwt-extended set up, views
    registered). Returns the process's token verifier and its sessions seen,
    for the optimisations built on them.
    """
    tokens, seen = TokenVerifier(app), SeenSessions()
    app.extensions[FAST_VERIFIER] = fast_verifier(tokens, seen)
    app.extensions[FAST_CLAIMS] = tokens.claims
    main_view = app.view_functions[ORDER_ENDPOINT]
    app.view_functions[ORDER_ENDPOINT] = order_view(tokens, seen, main_view)
    return tokens, seen
