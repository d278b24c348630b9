"""Every JSON log line the app writes, captured from its one stream."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import Flask

from backend import logs


class LogLines:
    """The lines written while capturing, parsed."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def all(self) -> list[dict[str, Any]]:
        """Return every line so far, oldest first."""
        return [json.loads(line) for line in self._stream.getvalue().splitlines()]

    def access(self) -> list[dict[str, Any]]:
        """Return the access lines so far."""
        return [line for line in self.all() if line.get("logger") == logs.ACCESS_LOGGER]

    def clear(self) -> None:
        """Forget the lines so far."""
        self._stream.seek(0)
        self._stream.truncate()


@contextlib.contextmanager
def captured_logs(app: Flask) -> Iterator[LogLines]:
    """Send `app`'s log lines (access lines included) to a buffer, as they go to stderr."""
    stream = io.StringIO()
    logs.configure_logging(app.config["LOG_LEVEL"], stream=stream)
    try:
        yield LogLines(stream)
    finally:
        logs.configure_logging(app.config["LOG_LEVEL"])
