"""Small assertions shared by tests."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import TestResponse

from backend.events import stream_key
from backend.redis_store import get_redis

ERROR_KEYS = {"code", "status", "error", "message"}


def json_body(response: TestResponse) -> dict[str, Any]:
    """Return the response's JSON object, failing the test if it has none."""
    body = response.get_json(silent=True)
    assert isinstance(body, dict), f"expected a JSON object, got {response.data[:200]!r}"
    return body


def assert_error(response: TestResponse, code: int, error: str) -> dict[str, Any]:
    """Assert `response` is an error in the one error shape; return its body."""
    assert response.status_code == code, response.data
    assert response.mimetype == "application/json"
    body = json_body(response)
    assert body.keys() >= ERROR_KEYS, body
    assert body["code"] == code
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert body["message"]
    text = response.get_data(as_text=True)
    for leak in ("Traceback", 'File "', "/work/", "site-packages", "SELECT "):
        assert leak not in text
    return body


def stream_events(channel: str) -> list[tuple[str, dict[str, Any]]]:
    """Return `(type, data)` of every event in `channel`'s stream, oldest first."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = get_redis().xrange(stream_key(channel))  # type: ignore[assignment]
    return [(fields[b"type"].decode(), json.loads(fields[b"data"])) for _id, fields in entries]
