"""The REST ceiling: a bare Flask app with one static JSON endpoint, nothing else.

`bench/rest.py` runs it under the Procfile's gunicorn settings
(`gunicorn -c python:backend.gunicorn_conf bench.ceiling_app:app`) to measure what
the server stack alone can do on this machine.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

PAYLOAD: dict[str, Any] = {
    "ok": True,
    "items": [
        {"id": 1, "name": "first", "price": "10.00"},
        {"id": 2, "name": "second", "price": "12.50"},
        {"id": 3, "name": "third", "price": "7.25"},
    ],
}

app = Flask(__name__)


@app.get("/ping")
def ping() -> dict[str, Any]:
    """Return the same small JSON body every time."""
    return PAYLOAD
