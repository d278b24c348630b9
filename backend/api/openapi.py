"""The OpenAPI document says every status a route can answer, and headers as they are sent.

flask-smorest documents what each view's decorators declare (200, 422, 304,
412/428). What the layers around every view add is documented here, for each
operation, as an apispec plugin, so no view has to repeat it:

- 400 (a body that is not JSON, a NUL in the URL), 401 (a missing, bad or
  revoked token; on public routes a bad one) and 503 with `Retry-After` (the
  database or Redis unreachable, the pool exhausted) on every `/api/v1` route;
- 403 on routes that need a token (a role, a channel one may not read);
- 404 on routes with an id in the path;
- 429 with `Retry-After` on writes (the rate limits);
- the error shape for each 4xx or 5xx a view declares itself (`alt_response(409, ...)`),
  and `Retry-After` on its own 503s;
- `X-Pagination` as what it is on the wire: a string holding JSON.
"""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin

ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
PAGINATION_HEADER = {
    "description": "Pagination metadata as JSON text: `total`, `total_pages`, `first_page`, "
    "`last_page`, `page`, `previous_page`, `next_page` (see `PaginationMetadata`).",
    "schema": {"type": "string"},
}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": ERROR_CONTENT}
    if retry_after:
        response["headers"] = {"Retry-After": RETRY_AFTER}
    return response


class ErrorResponses(BasePlugin):
    """Adds the statuses every layer around a view can answer to each operation."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """Complete the responses (and the `X-Pagination` header) of each operation of `path`."""
        if path is None or operations is None or not path.startswith(self.prefix):
            return
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            declared = {str(status) for status in responses}  # a view's own are int keys
            for status, response in self._statuses(path, method, operation).items():
                if status not in declared:
                    responses[status] = response
            for status, response in responses.items():
                # A view's own `alt_response(409, description=...)`: an error, in the error
                # shape; its own 503 (a provider down) says `Retry-After` like every 503.
                if str(status)[0] not in "45" or not isinstance(response, dict):
                    continue
                response.setdefault("content", ERROR_CONTENT)
                if str(status) == "503":
                    response.setdefault("headers", {"Retry-After": RETRY_AFTER})
            for response in responses.values():
                headers = response.get("headers", {}) if isinstance(response, dict) else {}
                if "X-Pagination" in headers:
                    headers["X-Pagination"] = PAGINATION_HEADER

    @staticmethod
    def _statuses(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
        statuses = {
            "400": _error("The body is not valid JSON, or the URL holds a NUL character."),
            "401": _error("The token is missing, invalid, expired or revoked."),
            "503": _error("The database or Redis is unavailable; retry.", retry_after=True),
        }
        if operation.get("security"):
            statuses["403"] = _error("Signed in, but not allowed.")
        if "{" in path:
            statuses["404"] = _error("Not found, or not yours.")
        if method in WRITE_METHODS:
            statuses["429"] = _error("Too many requests.", retry_after=True)
        return statuses
