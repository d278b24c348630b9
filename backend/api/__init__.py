"""The HTTP layer: the flask-smorest `Api` under `/api/v1` and its blueprints.

Blueprints validate input with marshmallow schemas and call services; they
hold no SQL and no business rules. Add a resource by writing
`backend/api/<resource>.py` with a `blp` and listing it in `API_BLUEPRINTS`.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import Flask, send_from_directory
from flask.typing import ResponseReturnValue
from swagger_ui_bundle import swagger_ui_path

from backend.api import (
    audit,
    auth,
    converters,
    errors,
    events,
    files,
    jobs,
    jobs_dashboard,
    notifications,
    oauth,
    openapi,
    ops,
    orders,
    parsing,
    payments,
    products,
    security,
    upload_urls,
    users,
    webhooks,
)
from backend.schemas.fields import Money

API_PREFIX = "/api/v1"
DOCS_ASSETS_PATH = f"{API_PREFIX}/docs/assets/"
API_BLUEPRINTS: list[flask_smorest.Blueprint] = [
    auth.blp,
    oauth.blp,
    users.blp,
    products.blp,
    orders.blp,
    payments.blp,
    notifications.blp,
    events.blp,
    jobs.blp,
    files.blp,
    upload_urls.blp,
    audit.blp,
    jobs_dashboard.blp,
    webhooks.blp,
]


class Api(flask_smorest.Api):
    """flask-smorest's `Api`, documenting the project's error shape."""

    ERROR_SCHEMA = errors.ErrorSchema


def _openapi_settings(version: str, description: str) -> dict[str, Any]:
    summary, _, introduction = description.strip().partition("\n")
    return {
        "API_TITLE": "flet-backend",
        "API_VERSION": version,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": API_PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": DOCS_ASSETS_PATH,
        "API_SPEC_OPTIONS": {
            "info": {"description": f"{summary}\n\n{introduction.strip()}"},
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        },
    }


def _docs_asset(filename: str) -> ResponseReturnValue:
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask, *, version: str, description: str) -> Api:
    """Create the `Api`, register every blueprint and the error handlers.

    `version` and `description` (summary line, blank line, introduction) head
    the OpenAPI document; `create_app` passes the package's own.
    """
    for key, value in _openapi_settings(version, description).items():
        app.config.setdefault(key, value)
    security.init_app(app)
    jobs_dashboard.init_app(app)  # rq-dashboard's rules keep Werkzeug's int (instance 0)
    app.url_map.converters["int"] = converters.IdConverter  # before any of our rules is added
    app.before_request(parsing.refuse_nul_in_url)
    api = Api(app, spec_kwargs={"extra_plugins": [openapi.ErrorResponses(API_PREFIX)]})
    api.register_field(Money, None, None)  # its `oneOf` comes from the field's metadata
    api.register_blueprint(ops.blp)
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint, url_prefix=f"{API_PREFIX}{blueprint.url_prefix}")
    app.add_url_rule(f"{DOCS_ASSETS_PATH}<path:filename>", "docs_asset", _docs_asset)
    errors.init_app(app)  # after flask-smorest's own handler, which it replaces
    app.extensions["api"] = api
    return api
