"""Notifications: created by services, pushed after commit, listed and marked read by owners."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.db import db
from backend.errors import ValidationFailed
from backend.events import stream_key
from backend.models import Notification, User
from backend.redis_store import get_redis
from backend.services.notifications import notify
from tests.support.accounts import Login, login, make_user
from tests.support.helpers import assert_error, json_body

API = "/api/v1"
FIELDS = {"id", "kind", "title", "body", "data", "read_at", "created_at"}


def stream_events(channel: str) -> list[tuple[str, dict[str, object]]]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = get_redis().xrange(stream_key(channel))  # type: ignore[assignment]
    return [(fields[b"type"].decode(), json.loads(fields[b"data"])) for _id, fields in entries]


def signed_in(client: FlaskClient, email: str, *, role: str = "user") -> tuple[User, Login]:
    user = make_user(email, role=role)
    return user, login(client, email)


def test_notify_creates_the_row_and_publishes_only_after_commit(app: Flask) -> None:
    ada = make_user("ada@example.test")
    with db.atomic():
        created = notify(
            user_id=ada.id, kind="order.shipped", title="Shipped", body="On its way", data={"id": 3}
        )
        assert stream_events(f"user:{ada.id}") == []
    row = Notification.get_by_id(created.id)
    assert (row.user_id, row.kind, row.title, row.body, row.data, row.read_at) == (
        ada.id, "order.shipped", "Shipped", "On its way", {"id": 3}, None
    )  # fmt: skip
    [(kind, payload)] = stream_events(f"user:{ada.id}")
    assert kind == "notification.created"
    assert payload == {
        "id": created.id,
        "kind": "order.shipped",
        "title": "Shipped",
        "body": "On its way",
        "data": {"id": 3},
        "read_at": None,
        "created_at": created.created_at.isoformat(),
    }
    assert str(payload["created_at"]).endswith("+00:00")


def test_notify_publishes_nothing_when_the_transaction_rolls_back(app: Flask) -> None:
    ada = make_user("ada@example.test")
    with db.atomic() as transaction:
        notify(user_id=ada.id, kind="promo", title="Hello")
        transaction.rollback()
    assert Notification.select().count() == 0
    assert stream_events(f"user:{ada.id}") == []


def test_notify_outside_a_transaction_publishes_at_once_with_defaults(app: Flask) -> None:
    ada = make_user("ada@example.test")
    other = make_user("bob@example.test")
    created = notify(user_id=ada.id, kind="welcome", title="Welcome")
    assert (created.body, created.data) == ("", {})
    assert [kind for kind, _ in stream_events(f"user:{ada.id}")] == ["notification.created"]
    assert stream_events(f"user:{other.id}") == []


@pytest.mark.parametrize(
    ("kind", "title"), [("", "Title"), ("k" * 65, "Title"), ("kind", ""), ("kind", "t" * 201)]
)
def test_notify_refuses_empty_or_overlong_kind_and_title(app: Flask, kind: str, title: str) -> None:
    ada = make_user("ada@example.test")
    with pytest.raises(ValidationFailed):
        notify(user_id=ada.id, kind=kind, title=title)
    assert Notification.select().count() == 0
    assert stream_events(f"user:{ada.id}") == []


def test_list_is_newest_first_paginated_and_only_the_callers(client: FlaskClient) -> None:
    ada, ada_login = signed_in(client, "ada@example.test")
    bob, _ = signed_in(client, "bob@example.test")
    ids = [notify(user_id=ada.id, kind="k", title=f"n{n}").id for n in range(5)]
    notify(user_id=bob.id, kind="k", title="bob's")
    response = client.get(f"{API}/notifications", headers=ada_login.headers)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert [n["id"] for n in body] == ids[::-1]
    assert set(body[0]) == FIELDS
    assert body[0]["read_at"] is None
    assert body[0]["created_at"].endswith("+00:00")
    assert json.loads(response.headers["X-Pagination"])["total"] == 5
    second = client.get(f"{API}/notifications?page=2&page_size=2", headers=ada_login.headers)
    assert [n["id"] for n in second.get_json()] == [ids[2], ids[1]]
    pagination = json.loads(second.headers["X-Pagination"])
    assert (pagination["total"], pagination["total_pages"], pagination["page"]) == (5, 3, 2)


def test_list_filters_unread_and_after(client: FlaskClient) -> None:
    ada, ada_login = signed_in(client, "ada@example.test")
    ids = [notify(user_id=ada.id, kind="k", title=f"n{n}").id for n in range(4)]
    client.post(f"{API}/notifications/{ids[1]}/read", headers=ada_login.headers)
    unread = client.get(f"{API}/notifications?unread=true", headers=ada_login.headers)
    assert [n["id"] for n in unread.get_json()] == [ids[3], ids[2], ids[0]]
    assert json.loads(unread.headers["X-Pagination"])["total"] == 3
    after = client.get(f"{API}/notifications?after={ids[1]}", headers=ada_login.headers)
    assert [n["id"] for n in after.get_json()] == [ids[3], ids[2]]
    both = client.get(f"{API}/notifications?after={ids[0]}&unread=1", headers=ada_login.headers)
    assert [n["id"] for n in both.get_json()] == [ids[3], ids[2]]
    everything = client.get(f"{API}/notifications?unread=false&after=0", headers=ada_login.headers)
    assert len(everything.get_json()) == 4
    assert client.get(f"{API}/notifications?after={ids[3]}", headers=ada_login.headers).json == []


def test_marking_one_read_sets_read_at_once(client: FlaskClient) -> None:
    ada, ada_login = signed_in(client, "ada@example.test")
    created = notify(user_id=ada.id, kind="k", title="Hi", data={"order": 1})
    first = client.post(f"{API}/notifications/{created.id}/read", headers=ada_login.headers)
    body = json_body(first)
    assert first.status_code == 200
    assert set(body) == FIELDS
    assert (body["id"], body["data"]) == (created.id, {"order": 1})
    assert body["read_at"].endswith("+00:00")
    again = client.post(f"{API}/notifications/{created.id}/read", headers=ada_login.headers)
    assert again.status_code == 200
    assert json_body(again)["read_at"] == body["read_at"]
    assert Notification.get_by_id(created.id).read_at.isoformat() == body["read_at"]


def test_marking_someone_elses_or_an_unknown_notification_is_not_found(
    client: FlaskClient,
) -> None:
    ada, _ = signed_in(client, "ada@example.test")
    _, bob_login = signed_in(client, "bob@example.test")
    _, admin_login = signed_in(client, "root@example.test", role="admin")
    created = notify(user_id=ada.id, kind="k", title="Private")
    for headers in (bob_login.headers, admin_login.headers):
        response = client.post(f"{API}/notifications/{created.id}/read", headers=headers)
        assert_error(response, 404, "not_found")
        assert client.get(f"{API}/notifications", headers=headers).json == []
    unknown = client.post(f"{API}/notifications/9999/read", headers=bob_login.headers)
    assert_error(unknown, 404, "not_found")
    assert Notification.get_by_id(created.id).read_at is None


def test_read_all_counts_and_touches_only_the_callers(client: FlaskClient) -> None:
    ada, ada_login = signed_in(client, "ada@example.test")
    bob, _ = signed_in(client, "bob@example.test")
    ids = [notify(user_id=ada.id, kind="k", title=f"n{n}").id for n in range(3)]
    notify(user_id=bob.id, kind="k", title="bob's")
    early = json_body(client.post(f"{API}/notifications/{ids[0]}/read", headers=ada_login.headers))
    response = client.post(f"{API}/notifications/read-all", headers=ada_login.headers)
    assert response.status_code == 200
    assert json_body(response) == {"updated": 2}
    mine = client.get(f"{API}/notifications", headers=ada_login.headers).get_json()
    assert all(n["read_at"] for n in mine)
    assert next(n for n in mine if n["id"] == ids[0])["read_at"] == early["read_at"]
    assert Notification.get(Notification.user == bob.id).read_at is None
    again = client.post(f"{API}/notifications/read-all", headers=ada_login.headers)
    assert json_body(again) == {"updated": 0}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/notifications"),
        ("post", "/notifications/1/read"),
        ("post", "/notifications/read-all"),
    ],
)
def test_notification_endpoints_need_a_token(client: FlaskClient, method: str, path: str) -> None:
    assert_error(getattr(client, method)(f"{API}{path}"), 401, "unauthorized")


@pytest.mark.parametrize("query", ["unread=maybe", "after=-1", "after=x", "page_size=101"])
def test_bad_list_queries_are_refused(client: FlaskClient, query: str) -> None:
    _, ada_login = signed_in(client, "ada@example.test")
    response = client.get(f"{API}/notifications?{query}", headers=ada_login.headers)
    assert_error(response, 422, "validation_error")


def test_endpoints_are_documented(client: FlaskClient) -> None:
    spec = json_body(client.get(f"{API}/openapi.json"))
    paths = spec["paths"]
    assert {"/api/v1/notifications", "/api/v1/notifications/{notification_id}/read"} <= set(paths)
    read_all = paths["/api/v1/notifications/read-all"]["post"]
    assert read_all["security"] == [{"bearerAuth": []}]
    assert "updated" in spec["components"]["schemas"]["ReadAllResult"]["properties"]
    parameters = {p["name"] for p in paths["/api/v1/notifications"]["get"]["parameters"]}
    assert {"unread", "after", "page", "page_size"} <= parameters
