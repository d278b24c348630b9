"""Structured JSON logs: one line per request, carrying a request id.

The request id comes from the `X-Request-ID` header (when it is a sane
token) or is generated, is bound to every log line of the request and is
echoed back in the response's `X-Request-ID` header.

The per-request access line is the same JSON object structlog would render
(its fields, then the bound context, `level`, `logger`, `timestamp`), built
directly: structlog's processor chain and the formatter's second record cost
more than the rest of a cached read. When our stderr handler is the only one
the line would reach, it is written there at once; otherwise (say, pytest's
log capture) it goes through the stdlib handlers as one ready-made record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
ACCESS_LOGGER = "backend.access"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger(ACCESS_LOGGER)


class JSONFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, passing through records that already hold their JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record's JSON line."""
        if getattr(record, "json_line", False):
            return str(record.msg)
        return super().format(record)


def _json_fallback(value: Any) -> str:
    return repr(value)


_ENCODER = json.JSONEncoder(default=_json_fallback)  # json.dumps(default=...) builds one per call
_installed: list[logging.Handler] = []  # the handler `configure_logging` put on the root logger


def access_line(fields: dict[str, Any]) -> str:
    """Render an access-log line as structlog's JSON renderer would (see the module doc)."""
    for key, value in structlog.contextvars.get_contextvars().items():
        fields.setdefault(key, value)
    fields["level"] = "info"
    fields["logger"] = ACCESS_LOGGER
    fields["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return _ENCODER.encode(fields)


def _sole_stream_handler() -> logging.StreamHandler[Any] | None:
    """Return our stderr handler if an access record would reach it and nothing else."""
    root = logging.root
    handler = _installed[0] if _installed else None
    if (
        isinstance(handler, logging.StreamHandler)
        and root.handlers == [handler]
        and access_log.propagate
        and not (access_log.handlers or access_log.filters or root.filters or handler.filters)
        and handler.level <= logging.INFO
    ):
        return handler
    return None


def _log_access(fields: dict[str, Any]) -> None:
    line = access_line(fields)
    handler = _sole_stream_handler()
    if handler is not None:
        # What `handler.handle(record)` would do for this record, minus building it;
        # a failed write goes the usual way (and its error to `handleError`).
        with contextlib.suppress(OSError, ValueError), handler.lock or contextlib.nullcontext():
            handler.stream.write(line + handler.terminator)
            handler.flush()
            return
    record = access_log.makeRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, line, (), None)
    record.json_line = True
    access_log.handle(record)


def configure_logging(level: str) -> None:
    """Route stdlib and structlog logging to stderr as one JSON object per line."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = JSONFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    _installed[:] = [handler]


def begin_request(incoming_id: str) -> str:
    """Choose the request id (the client's when it is sane) and bind it to every log line."""
    request_id = incoming_id if _SAFE_REQUEST_ID.match(incoming_id) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def log_request(method: str, path: str, status: int, started: float) -> None:
    """Write the request's access line (`started`: its `time.perf_counter()` at arrival)."""
    if access_log.isEnabledFor(logging.INFO):
        duration_ms = (time.perf_counter() - started) * 1000
        _log_access({
            "method": method, "path": path, "status": status,
            "duration_ms": round(duration_ms, 2), "event": "request",
        })  # fmt: skip


def _start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = begin_request(request.headers.get(REQUEST_ID_HEADER, ""))


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # pragma: no cover - before_request always ran
        return response
    response.headers[REQUEST_ID_HEADER] = request_id
    log_request(request.method, request.path, response.status_code, g.request_started)
    return response


def init_app(app: Flask) -> None:
    """Configure logging and add the request-id and access-log hooks."""
    configure_logging(app.config["LOG_LEVEL"])
    app.before_request(_start_request)
    app.after_request(_finish_request)
