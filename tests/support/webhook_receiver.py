"""A real local HTTP server that receives webhooks and verifies them with `standardwebhooks`.

It records every request it gets (`received`: headers, body, whether the
signature verified with its `secret`) and answers by `mode`: "ok" (200),
"fail" (500), "gone" (410), "redirect" (307 to itself) or "hang" (holds the
request for `hang_seconds`, or until `release()`, then 200). `failures` makes
that many requests answer 500 first. `stop()` closes the port (connections are
refused) and `start()` opens it again on the same port.

The fixture `webhook_receiver` starts one per test; its `url` is on 127.0.0.1,
so apps that send to it need `WEBHOOKS_ALLOW_PRIVATE_NETWORKS`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float  # time.time() when it arrived

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def verifies_with(self, secret: str) -> bool:
        """Whether `secret` alone verifies this request's signature (standardwebhooks)."""
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True


@dataclass
class Receiver:
    """The running server: its switches and what it received."""

    secret: str | None = None
    mode: str = "ok"
    failures: int = 0
    hang_seconds: float = 30.0
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        """Listen (again) on `port` (any free port the first time)."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._release.clear()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: connecting is refused until `start()`."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def release(self) -> None:
        """Let requests held by "hang" answer now."""
        self._release.set()

    def record(self, received: Received) -> None:
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until `count` requests arrived (or `timeout` passed); return all of them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count and time.monotonic() < deadline:
                self._arrived.wait(deadline - time.monotonic())
            return list(self.received)

    def answer(self) -> int:
        """The status for the next request."""
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                return 500
        if self.mode == "hang":
            self._release.wait(self.hang_seconds)
        return {"fail": 500, "gone": 410, "redirect": 307}.get(self.mode, 200)

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        if self.secret is None:
            return False
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the sender's connection reuse shows
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.record(
                Received(self.path, headers, body, receiver.verify(body, headers), time.time())
            )
            status = receiver.answer()
            with contextlib.suppress(OSError):  # the sender may have given up
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", receiver.url)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, stopped after the test."""
    receiver = Receiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
