"""Security headers on every response; no caching of anything personal."""

from __future__ import annotations

from flask import Flask, Response, request

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PRIVATE_PREFIXES = ("/api/v1/auth", "/api/v1/users")
_LOWERED = tuple((name.lower(), name, value) for name, value in HEADERS.items())


def _add_headers(response: Response) -> Response:
    # One pass over the response's headers instead of a case-insensitive search per name.
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    for lowered, name, value in _LOWERED:
        if lowered not in present:
            headers.add(name, value)
    if "cache-control" not in present and (
        "HTTP_AUTHORIZATION" in request.environ or request.path.startswith(PRIVATE_PREFIXES)
    ):
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response, and trust `PROXY_FIX_X_FOR` proxies for client IPs."""
    app.after_request(_add_headers)
    hops = int(app.config.get("PROXY_FIX_X_FOR", 0))
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
