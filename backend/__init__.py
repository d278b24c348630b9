"""flet-backend: the server Flet apps talk to.

A JSON API for Flet clients (web, desktop and mobile). Authenticate with
`Authorization: Bearer <access token>`. Every error has one shape:
`{"code", "status", "error", "message", "errors"}`, where `error` is a stable
machine-readable slug. Lists are paginated with `page` and `page_size`; totals
are in the `X-Pagination` header (JSON text). Amounts are decimal strings
(`"19.99"`); JSON numbers are read exactly, never through a float. Text may
not contain NUL characters (400), nor JSON nest deeper than 32 levels. Long
work runs as background jobs and live updates stream over Server-Sent Events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

__version__ = "0.1.0"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask application.

    Configuration comes from the environment (and a `.env` file when present);
    `config` overrides it key by key. Raises `backend.config.ConfigError` when
    the configuration is unsafe for production.
    """
    from backend import (
        api,
        cli,
        cors,
        db,
        logs,
        metrics,
        optimizations,
        ratelimit,
        redis_store,
        security_headers,
        stores,
    )
    from backend.config import load_config

    app = Flask(__name__, static_folder=None)
    app.config.update(load_config(config))
    logs.init_app(app)
    db.init_app(app)
    redis_store.init_app(app)
    stores.init_app(app)
    metrics.init_app(app)
    cors.init_app(app)
    security_headers.init_app(app)
    ratelimit.init_app(app)
    api.init_app(app, version=__version__, description=__doc__ or "")
    optimizations.init_app(app)  # last: it may wrap what the others installed
    cli.init_app(app)
    return app
