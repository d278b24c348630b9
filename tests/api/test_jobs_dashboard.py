"""The jobs dashboard (rq-dashboard) under /admin/rq: admins only, through a one-use link."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import User
from tests.support.accounts import ADMIN_EMAIL, login, make_user
from tests.support.helpers import assert_error

LINK = "/api/v1/admin/jobs-dashboard"


def open_link(client: FlaskClient, headers: dict[str, str]) -> str:
    """Ask for a dashboard link; return its path and query."""
    response = client.post(LINK, headers=headers)
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert body["expires_in"] == 60
    url = urlsplit(body["url"])
    assert url.scheme == "http"
    assert url.path == "/admin/rq/login"
    return f"{url.path}?{url.query}"


def sign_in(client: FlaskClient, headers: dict[str, str]) -> None:
    """Follow a fresh link: the client then holds the dashboard cookie."""
    response = client.get(open_link(client, headers))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/rq/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/admin/rq" in cookie


def test_an_admin_opens_the_dashboard_through_a_link(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    sign_in(client, admin)
    page = client.get("/admin/rq/")
    assert page.status_code == 200
    assert b"RQ Dashboard" in page.data or b"rq-dashboard" in page.data.lower()
    queues = client.get("/admin/rq/0/data/queues.json")
    assert queues.status_code == 200
    assert {q["name"] for q in queues.get_json()["queues"]} >= set()


def test_a_link_works_once(client: FlaskClient, admin: dict[str, str]) -> None:
    path = open_link(client, admin)
    assert client.get(path).status_code == 303
    client.delete_cookie("jobs_dashboard", path="/admin/rq")
    assert_error(client.get(path), 410, "expired")
    assert_error(client.get("/admin/rq/login?ticket=made-up"), 410, "expired")


@pytest.mark.parametrize(
    "path", ["/admin/rq/", "/admin/rq/0/view/workers", "/admin/rq/0/data/queues.json"]
)
def test_without_the_cookie_the_dashboard_is_401(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path), 401, "unauthorized")
    client.set_cookie("jobs_dashboard", "forged.value.sig", path="/admin/rq")
    assert_error(client.get(path), 401, "unauthorized")


def test_users_get_no_link_and_anonymous_callers_are_401(
    client: FlaskClient, user: dict[str, str]
) -> None:
    assert_error(client.post(LINK, headers=user), 403, "forbidden")
    assert_error(client.post(LINK), 401, "unauthorized")


def test_logout_and_demotion_close_an_open_dashboard(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    sign_in(client, admin)
    assert client.get("/admin/rq/").status_code == 200
    make_user("second@example.test", role="admin")
    User.update(role="user").where(User.email == ADMIN_EMAIL).execute()
    assert_error(client.get("/admin/rq/"), 403, "forbidden")
    User.update(role="admin").where(User.email == ADMIN_EMAIL).execute()
    assert client.get("/admin/rq/").status_code == 200
    User.update(is_active=False).where(User.email == ADMIN_EMAIL).execute()
    assert_error(client.get("/admin/rq/"), 401, "unauthorized")
    User.update(is_active=True).where(User.email == ADMIN_EMAIL).execute()
    assert client.post("/api/v1/auth/logout", headers=admin).status_code == 204
    assert_error(client.get("/admin/rq/"), 401, "token_revoked")


def test_the_cookie_expires(make_app: Callable[..., Flask]) -> None:
    app = make_app(DASHBOARD_COOKIE_SECONDS=1)
    client = app.test_client()
    with app.app_context():
        make_user(ADMIN_EMAIL, role="admin")
        headers = login(client, ADMIN_EMAIL).headers
    sign_in(client, headers)
    assert client.get("/admin/rq/").status_code == 200
    time.sleep(2.1)
    assert_error(client.get("/admin/rq/"), 401, "unauthorized")


def test_the_dashboards_buttons_need_the_cookie_too(client: FlaskClient) -> None:
    assert_error(client.post("/admin/rq/job/some-id/delete"), 401, "unauthorized")
    assert_error(client.post("/admin/rq/requeue/default"), 401, "unauthorized")


def test_the_pages_icon_is_served_and_nothing_else_there(client: FlaskClient) -> None:
    icon = client.get("/admin/rq/app-static/favicon.ico")
    assert icon.status_code == 200
    icon.close()
    assert_error(client.get("/admin/rq/app-static/web.py"), 404, "not_found")
