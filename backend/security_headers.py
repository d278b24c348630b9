"""Security headers on every response; no caching of anything personal."""

from __future__ import annotations

from flask import Flask, Response, request

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PRIVATE_PREFIXES = ("/api/v1/auth", "/api/v1/users")


def _add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    personal = "Authorization" in request.headers or request.path.startswith(PRIVATE_PREFIXES)
    if personal and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response, and trust `PROXY_FIX_X_FOR` proxies for client IPs."""
    app.after_request(_add_headers)
    hops = int(app.config.get("PROXY_FIX_X_FOR", 0))
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
