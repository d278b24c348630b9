"""Whole responses of public catalog reads, kept in each process and served again byte for byte.

Speeds up: `GET /products/{id}` and `GET /products` (and `HEAD`). The first
request for a path and query runs the view as usual (validation, service,
schema, ETag, pagination) and keeps the 200 response's body and headers; later
requests get a new response with the same bytes, without the database,
marshmallow or flask-smorest. Measured with `bench/rest.py` (SQLite, x the
bare-Flask ceiling of the same run; README, "Optimisations"): `GET
/api/v1/products/1` 0.26x without the layer, 0.38x with this module alone;
`GET /api/v1/products?page=1` 0.13x and 0.53x (`replay` takes both near 1x).

Costs: one Redis round trip per batch of concurrent requests (the version check,
shared by `VersionReader`), the memory of at most `MAX_ENTRIES` responses per
process, and an admin/public split of the keys.

Why it is correct: entries are tagged with the catalog's version read before
they were computed and served only while a version read after the request
arrived still matches (`backend.optimizations.local_cache`). The catalog's
services call `backend.cache.invalidate(CATALOG)` after every write commits, so
a write made by any process, an order's stock change included, is seen at
once. What a response may contain depends on who asks, so the key holds the
viewer's class: `admin` or `public` (anonymous callers and users); a bad token
is still 401. A matching `If-None-Match` answers 304 exactly as flask-smorest
does. With Redis unreachable the view runs as if this module were not there.

Installed by `init_app` at startup, by wrapping the views of `CATALOG_READS` in
`app.view_functions` (a missing endpoint fails at startup, not silently). The
public answers it gives are marked for `backend.optimizations.replay`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from flask import Flask, Response, current_app, request
from flask_smorest.exceptions import NotModified

from backend import cache
from backend.api.security import optional_caller
from backend.optimizations import replay
from backend.optimizations.local_cache import LocalCache, Version, VersionReader
from backend.redis_store import get_redis
from backend.services.access import is_admin
from backend.services.products import CACHE_NAMESPACE

log = structlog.get_logger(__name__)

CATALOG_READS = ("products.get_product", "products.list_products")
CACHED_METHODS = frozenset({"GET", "HEAD"})
EXTENSION = "catalog_cache"  # app.extensions key: the app's `LocalCache`


@dataclass(frozen=True)
class Rendered:
    """A response as the view produced it (before the app's after-request hooks)."""

    body: bytes
    headers: list[tuple[str, str]]
    etag: str | None

    @classmethod
    def capture(cls, response: Any) -> Rendered | None:
        """Copy a cacheable response (a 200 with its whole body in memory), else None."""
        if (
            not isinstance(response, Response)
            or response.status_code != 200
            or response.direct_passthrough
            or not response.is_sequence
        ):
            return None
        etag, _weak = response.get_etag()
        return cls(response.get_data(), list(response.headers.items()), etag)

    def replay(self) -> Response:
        """Return a new response with the same body and headers (304 if the ETag matches).

        Raises:
            NotModified: The request's `If-None-Match` names this ETag.
        """
        if self.etag is not None and self.etag in request.if_none_match:
            raise NotModified
        response: Response = current_app.response_class(self.body, headers=self.headers)
        return response


def viewer_class() -> str:
    """Return what the caller may see: `admin` or `public` (a bad token is still 401)."""
    viewer = optional_caller()
    return "admin" if viewer is not None and is_admin(viewer) else "public"


def request_key(viewer: str) -> str:
    """Return the cache key of this request: the viewer class, the path and the query."""
    return f"{viewer} {request.path}?{request.query_string.decode('latin-1')}"


def store(app: Flask) -> LocalCache[Any]:
    """Return `app`'s catalog cache (installed by `init_app`)."""
    installed: LocalCache[Any] = app.extensions[EXTENSION]
    return installed


def _version(catalog: LocalCache[Any]) -> Version | None:
    try:
        return catalog.current()
    except redis.RedisError as exc:
        log.warning("cache_unavailable", error=str(exc))
        return None


def cached(view: Callable[..., Any], catalog: LocalCache[Any]) -> Callable[..., Any]:
    """Wrap a catalog read's view so that its 200 responses are kept in `catalog`."""

    @functools.wraps(view)  # keeps flask-smorest's `_apidoc`
    def cached_view(**view_args: Any) -> Any:
        if request.method not in CACHED_METHODS:
            return view(**view_args)
        viewer = viewer_class()
        version = _version(catalog)
        if version is None:
            return view(**view_args)
        key = request_key(viewer)
        rendered = catalog.get(key, version)
        if rendered is None:
            response = view(**view_args)
            rendered = Rendered.capture(response)
            if rendered is None:
                return response
            catalog.put(key, rendered, version)
        else:
            response = rendered.replay()
        if viewer == "public" and request.url_rule is not None:
            replay.mark(request.environ, version, request.url_rule.rule)
        return response

    return cached_view


def _catalog_version_of(app: Flask) -> Callable[[], str]:
    """Return a function reading the catalog's version with `app`'s Redis client.

    It works outside the app context too (the replay asks before Flask runs).
    """
    clients: list[redis.Redis] = []

    def read() -> str:
        if not clients:  # created on first use, as `get_redis` does
            with app.app_context():
                clients.append(get_redis())
        return cache.read_version(clients[0], CACHE_NAMESPACE)

    return read


def init_app(app: Flask) -> LocalCache[Any]:
    """Keep the responses of `CATALOG_READS` in a per-process cache of `app`; return it.

    Raises:
        KeyError: One of `CATALOG_READS` is not an endpoint of `app`.
    """
    catalog: LocalCache[Any] = LocalCache(VersionReader(_catalog_version_of(app)))
    app.extensions[EXTENSION] = catalog
    for endpoint in CATALOG_READS:
        app.view_functions[endpoint] = cached(app.view_functions[endpoint], catalog)
    return catalog
