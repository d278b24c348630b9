"""The jobs dashboard (rq-dashboard) under `/admin/rq`, for admins only.

An admin's app calls `POST /api/v1/admin/jobs-dashboard` with its Bearer token
and opens the returned URL in a browser: `/admin/rq/login?ticket=...` spends
the one-use ticket, sets a signed cookie (`DASHBOARD_COOKIE_SECONDS`, 15 min;
HttpOnly, SameSite=Strict, path `/admin/rq`) and redirects to the dashboard.
Every dashboard request checks the cookie's signature and age, then the
session and the admin role again; anything else is a 401/403 in the error
shape. SameSite=Strict keeps other sites from using the dashboard's buttons
(requeue, delete) with the admin's cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rq_dashboard
from flask import Flask, Response, current_app, redirect, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer
from marshmallow import Schema, fields
from rq_dashboard.web import setup_rq_connection

from backend.api.blueprint import Blueprint
from backend.api.errors import error_response
from backend.api.security import auth_required, caller, session_id
from backend.errors import DomainError
from backend.redis_store import RedisTarget, redis_target
from backend.services import dashboard_access

MOUNT = "/admin/rq"
COOKIE = "jobs_dashboard"
_SALT = "jobs-dashboard"
_READY = "backend.jobs_dashboard_ready"

blp = Blueprint("admin", __name__, url_prefix="/admin", description="Operating it (admin).")


class DashboardLinkSchema(Schema):
    """A one-use link that opens the jobs dashboard in a browser."""

    url = fields.String(
        required=True, metadata={"description": "Absolute; open it within a minute"}
    )
    expires_in = fields.Integer(
        required=True, metadata={"description": "Seconds the link is valid"}
    )


@blp.route("/jobs-dashboard", methods=["POST"])
@auth_required(blp, role="admin")
@blp.response(201, DashboardLinkSchema)
def open_jobs_dashboard() -> dict[str, Any]:
    """Get a one-use link that opens the jobs dashboard (admin).

    The link signs the browser in to `/admin/rq` for `DASHBOARD_COOKIE_SECONDS`
    and is spent on first use; it lasts a minute.
    """
    ticket = dashboard_access.issue_ticket(user=caller(), session_id=session_id())
    url = url_for("jobs_dashboard_login", ticket=ticket, _external=True)
    return {"url": url, "expires_in": dashboard_access.TICKET_TTL_SECONDS}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def login() -> ResponseReturnValue:
    """Spend a dashboard ticket, set the dashboard cookie and go to the dashboard."""
    try:
        user, sid = dashboard_access.redeem_ticket(request.args.get("ticket", ""))
    except DomainError as exc:
        return error_response(exc.status_code, error=exc.error, message=exc.message)
    response = redirect(f"{MOUNT}/", code=303)
    response.set_cookie(
        COOKIE, _serializer().dumps({"u": user.id, "s": sid}),
        max_age=int(current_app.config["DASHBOARD_COOKIE_SECONDS"]), path=MOUNT,
        httponly=True, samesite="Strict", secure=request.is_secure,
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


def _icon(filename: str) -> ResponseReturnValue:
    """Serve rq-dashboard's icon (the only file its pages ask the app for)."""
    if filename != "favicon.ico":
        return error_response(404, error="not_found", message="No such file.")
    return send_from_directory(Path(rq_dashboard.__file__).parent / "static", filename)


def _guard() -> Response | None:
    """Let a dashboard request through only for an admin with a valid cookie."""
    max_age = int(current_app.config["DASHBOARD_COOKIE_SECONDS"])
    try:
        claims = _serializer().loads(request.cookies.get(COOKIE, ""), max_age=max_age)
        dashboard_access.admin_for_session(user_id=int(claims["u"]), session_id=int(claims["s"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        return error_response(
            401,
            error="unauthorized",
            message="Open the dashboard through a link from POST /api/v1/admin/jobs-dashboard.",
        )
    except DomainError as exc:
        return error_response(exc.status_code, error=exc.error, message=exc.message)
    _connect_once()
    return None


def _connect_once() -> None:
    """Point rq-dashboard at our Redis on first use (it may be the embedded one, started lazily)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.extensions.get(_READY):
        app.config.update(dashboard_settings(redis_target(app)))
        setup_rq_connection(app)
        app.extensions[_READY] = True


def dashboard_settings(target: RedisTarget) -> dict[str, Any]:
    """rq-dashboard's connection settings for `target`.

    rq-dashboard opens its own clients from a URL (through `redis_sentinel_url`,
    which reads `redis+sentinel://host:port,host:port/master/db`), so it is given
    one that names the same Redis, and the passwords beside it. Every key is
    set, so that rq-dashboard does not copy our `REDIS_*` settings over them.
    """
    settings: dict[str, Any] = {
        "RQ_DASHBOARD_REDIS_URL": target.url,
        "RQ_DASHBOARD_REDIS_SENTINELS": None,
        "RQ_DASHBOARD_REDIS_SENTINEL_PASSWORD": target.sentinel_password,
        "RQ_DASHBOARD_REDIS_PASSWORD": target.password,
        "RQ_DASHBOARD_REDIS_DB": target.db,
    }
    if target.uses_sentinels:
        hosts = ",".join(f"{host}:{port}" for host, port in target.sentinels)
        url = f"redis+sentinel://{hosts}/{target.master}/{target.db}"
        settings["RQ_DASHBOARD_REDIS_URL"] = url
    return settings


def init_app(app: Flask) -> None:
    """Mount rq-dashboard under `/admin/rq` behind the admin cookie."""
    app.config.setdefault("DASHBOARD_COOKIE_SECONDS", 15 * 60)
    app.add_url_rule(f"{MOUNT}/login", "jobs_dashboard_login", login)
    # The dashboard's page links its icon through the app's `static` endpoint, which an
    # API without static files lacks: serve that one name from rq-dashboard's folder.
    if "static" not in app.view_functions:
        app.add_url_rule(f"{MOUNT}/app-static/<path:filename>", "static", _icon)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=MOUNT)
    # Scoped to the dashboard's blueprint and ahead of its own hook (which connects to Redis).
    app.before_request_funcs.setdefault(rq_dashboard.blueprint.name, []).insert(0, _guard)
