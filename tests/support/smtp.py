"""A real SMTP server for tests (aiosmtpd), as the `smtp_server` fixture.

Import the fixture into a test module with `from tests.support.smtp import smtp_server`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on `HOST` that nothing listens on (for now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


class SmtpServer:
    """Collects every message the server accepts, as parsed `EmailMessage`s."""

    def __init__(self, port: int) -> None:
        self.url = f"smtp://{HOST}:{port}"
        self.messages: list[EmailMessage] = []
        self._received = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        message = BytesParser(_class=EmailMessage, policy=default_policy).parsebytes(content)
        with self._received:
            self.messages.append(message)
            self._received.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """Wait until `count` messages arrived; return them (fails the test on timeout)."""
        deadline = time.monotonic() + timeout
        with self._received:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"expected {count} message(s), got {len(self.messages)}")
                self._received.wait(remaining)
            return list(self.messages)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 and a free port, stopped after the test."""
    port = free_port()
    server = SmtpServer(port)
    controller = Controller(server, hostname=HOST, port=port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
