"""Whole responses of public reads, kept in each process and replayed byte for byte.

`@cached_response(namespace, key)` goes right under `@blp.route`, above the
flask-smorest decorators. The first request for a key runs the view as usual
(validation, service, schema, ETag, pagination) and keeps the 200 response's
body and headers; later requests replay them while the namespace's version is
unchanged (`backend.cache.local`: checked in Redis for every request, so a
write committed by any process is seen at once). What a response may contain
depends on who asks, so the key always includes the viewer's class: `admin` or
`public` (anonymous callers and users). A matching `If-None-Match` answers 304
exactly as flask-smorest does. Only `GET`/`HEAD` are cached.

Anonymous plain `GET`s are then answered by `backend.api.replay` in front of
Flask, from the whole response the app sent (same version check).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request
from flask_smorest.exceptions import NotModified
from werkzeug.datastructures import Headers

from backend import cache
from backend.api import replay
from backend.api.security import optional_caller
from backend.services.access import is_admin

CACHED_METHODS = frozenset({"GET", "HEAD"})


class _CheckedHeaders(Headers):
    """A copy of headers werkzeug already checked when the view's response was built."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        super().__init__()
        self._list = list(items)  # skips re-checking every name and value


@dataclass(frozen=True)
class Rendered:
    """A response as the view produced it (before the app's after-request hooks)."""

    body: bytes
    headers: list[tuple[str, str]]
    etag: str | None

    @classmethod
    def capture(cls, response: Response) -> Rendered | None:
        """Copy a cacheable response (a 200 with its whole body in memory), else None."""
        if response.status_code != 200 or response.direct_passthrough or not response.is_sequence:
            return None
        etag, _weak = response.get_etag()
        return cls(response.get_data(), list(response.headers.items()), etag)

    def replay(self) -> Response:
        """Return a new response with the same body and headers (304 if the ETag matches)."""
        if self.etag is not None and self.etag in request.if_none_match:
            raise NotModified
        response: Response = current_app.response_class(
            self.body, headers=_CheckedHeaders(self.headers)
        )
        return response


def viewer_class() -> str:
    """Return what the caller may see: `admin` or `public` (a bad token is still 401)."""
    viewer = optional_caller()
    return "admin" if viewer is not None and is_admin(viewer) else "public"


def cached_response(
    namespace: str, key: Callable[..., str]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Cache the decorated view's 200 responses per viewer class and `key(**view_args)`.

    Args:
        namespace: The `backend.cache` namespace whose writes invalidate the responses.
        key: Builds the cache key from the view's URL arguments; it must cover
            everything the response depends on besides the viewer class.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)  # keeps flask-smorest's `_apidoc`
        def cached_view(*args: Any, **kwargs: Any) -> Any:
            if request.method not in CACHED_METHODS:
                return view(*args, **kwargs)
            viewer = viewer_class()
            full_key = f"{viewer}:{key(**kwargs)}"
            store = cache.local(namespace)
            version = cache.local_version(store)
            if version is None:
                return view(*args, **kwargs)
            rendered = store.get(full_key, version)
            if rendered is not None:
                response = rendered.replay()
            else:
                response = view(*args, **kwargs)
                rendered = Rendered.capture(response) if isinstance(response, Response) else None
                if rendered is None:
                    return response
                store.put(full_key, rendered, version)
            if viewer == "public" and request.url_rule is not None:
                replay.mark(request.environ, store, version, request.url_rule.rule)
                replay.install(current_app._get_current_object())  # type: ignore[attr-defined]
            return response

        return cached_view

    return decorator
