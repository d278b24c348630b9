"""`GET /audit`: the audit trail for admins, filtered by actor, action, target and time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from backend.models import AuditEvent, User
from backend.services import audit
from backend.services.audit import ClientInfo
from tests.support.accounts import ADMIN_EMAIL, USER_EMAIL
from tests.support.helpers import assert_error

URL = "/api/v1/audit"
HERE = ClientInfo(ip="192.0.2.7", request_id="req-1")


def record(action: str, *, actor: User | None = None, target: str = "order:12", **data: str) -> int:
    """Append an event directly; return its id."""
    kind, _, ident = target.partition(":")
    event = audit.record(
        action, client=HERE, actor=actor, target_type=kind, target_id=ident, data=data
    )
    return int(event.id)


def ids(client: FlaskClient, headers: dict[str, str], **query: str) -> list[int]:
    response = client.get(URL, headers=headers, query_string=query)
    assert response.status_code == 200, response.data
    return [entry["id"] for entry in response.get_json()]


def test_the_trail_reads_newest_first_with_every_field(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    root = User.get(User.email == ADMIN_EMAIL)
    first = record("order.status_changed", actor=root, to="shipped")
    response = client.get(URL, headers=admin)
    assert response.status_code == 200
    entries = response.get_json()
    assert len(entries) >= 2  # the admin's own sign-in came first
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    entry = entries[0]
    assert entry == {
        "id": first, "action": "order.status_changed", "actor_id": root.id,
        "target": "order:12", "ip": "192.0.2.7", "request_id": "req-1",
        "data": {"to": "shipped"}, "created_at": entry["created_at"],
    }  # fmt: skip
    assert datetime.fromisoformat(entry["created_at"]).utcoffset() == timedelta(0)
    pagination = json.loads(response.headers["X-Pagination"])
    assert pagination["total"] == AuditEvent.select().count()


def test_filters_combine(client: FlaskClient, admin: dict[str, str]) -> None:
    root = User.get(User.email == ADMIN_EMAIL)
    a = record("order.status_changed", actor=root, target="order:12")
    b = record("order.status_changed", actor=None, target="order:13")
    c = record("product.updated", actor=root, target="product:5")
    assert ids(client, admin, target="order:12") == [a]
    assert ids(client, admin, action="order.status_changed") == [b, a]
    assert ids(client, admin, action="order.status_changed", actor_id=str(root.id)) == [a]
    assert ids(client, admin, after=str(a), action="product.updated") == [c]
    assert ids(client, admin, target="user:999") == []


def test_time_filters_take_offsets_since_inclusive_until_exclusive(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    old = record("x.old")
    new = record("x.new")
    noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    AuditEvent.update(created_at=noon).where(AuditEvent.id == old).execute()
    AuditEvent.update(created_at=noon + timedelta(hours=1)).where(AuditEvent.id == new).execute()
    assert ids(client, admin, since="2026-01-01T13:00:00+00:00", until="2026-01-02T00:00:00Z") == [
        new
    ]
    # The same instant written in another zone.
    assert ids(client, admin, until="2026-01-01T13:00:00+01:00", action="x.old") == []
    assert ids(client, admin, since="2026-01-01T12:00:00Z", until="2026-01-01T13:00:00Z") == [old]


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2026-01-01T12:00:00"},  # no offset: which noon?
        {"since": "yesterday"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "0001-01-01T00:00:00+05:00"},  # before year 1 in UTC
        {"actor_id": "0"},
        {"actor_id": str(2**64)},
        {"after": "-1"},
        {"target": "order"},
        {"target": "Order:1"},
        {"target": "order:" + "9" * 65},
        {"action": "x" * 65},
        {"page": str(10**20)},
    ],
)
def test_bad_filters_are_422(
    client: FlaskClient, admin: dict[str, str], query: dict[str, str]
) -> None:
    assert_error(client.get(URL, headers=admin, query_string=query), 422, "validation_error")


def test_only_admins_read_the_trail(client: FlaskClient, user: dict[str, str]) -> None:
    assert_error(client.get(URL), 401, "unauthorized")
    assert_error(client.get(URL, headers=user), 403, "forbidden")
    assert User.get(User.email == USER_EMAIL).role == "user"
