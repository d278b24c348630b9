"""What every stand-in for an outside service shares: a WSGI app served on 127.0.0.1.

A stand-in is a dataclass deriving from `LocalServer` with a WSGI `__call__`;
`serving(stand_in)` runs it in a thread on a free port (or `port`) for a block,
and `stop()` closes the port mid-test, as a service that went down would.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from werkzeug.serving import make_server

S = TypeVar("S", bound="LocalServer")


@dataclass
class LocalServer:
    """The running server's address, its fault switch and its handle."""

    base: str = ""
    mode: str = "ok"
    server: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Answer one request (each stand-in defines it)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop answering: the port is closed."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextlib.contextmanager
def serving(fake: S, port: int = 0) -> Iterator[S]:
    """Serve `fake` on 127.0.0.1 (`port`, or a free one) until the block ends."""
    server = make_server("127.0.0.1", port, fake, threaded=True)
    fake.server, fake.base = server, f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.mode = "ok"
        fake.stop()
        thread.join(timeout=5)
