"""Cross-origin access for browser clients (Flet web apps served from another origin).

Only the origins listed in `CORS_ORIGINS` may call `/api/*` from a browser;
with none listed, no CORS headers are sent (same-origin only).
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

EXPOSED_HEADERS = ["X-Pagination", "X-Request-ID", "ETag", "Location", "Retry-After"]
# PUT: upload URLs take a file's bytes by PUT from the browser (Flet web's FilePicker.upload).
ALLOWED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
]


def init_app(app: Flask) -> None:
    """Allow the configured origins to call the API (no-op when none are configured)."""
    origins = app.config["CORS_ORIGINS"]
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        expose_headers=EXPOSED_HEADERS,
        allow_headers=ALLOWED_HEADERS,
        methods=ALLOWED_METHODS,
        max_age=600,
    )
