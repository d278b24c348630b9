"""Reading Server-Sent Events in tests (test client streams and raw HTTP alike)."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    """One SSE event (or the opening `retry:`)."""

    id: str | None
    event: str | None
    data: str | None
    retry: int | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data or "null")


def frames(chunks: Iterable[bytes | str]) -> Generator[Frame, None, None]:
    """Parse a stream of text chunks into frames (comments are skipped)."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
            if fields:
                retry = fields.get("retry")
                yield Frame(
                    fields.get("id"), fields.get("event"), fields.get("data"),
                    int(retry) if retry else None,
                )  # fmt: skip


def take(stream: Iterator[Frame], count: int) -> list[Frame]:
    """Read the next `count` events (skipping the opening `retry:`)."""
    found: list[Frame] = []
    for frame in stream:
        if frame.event is not None:
            found.append(frame)
            if len(found) == count:
                break
    return found


class LiveStream:
    """An SSE connection to a running server, read on a background thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        import queue
        import threading

        import httpx

        self.frames: queue.Queue[Frame | None] = queue.Queue()
        self.status: int | None = None
        self.error: Exception | None = None
        self._ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))
        self._url, self._headers = url, headers or {}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError(f"no response from {url}")

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._url, headers=self._headers) as response:
                self.status = response.status_code
                self._ready.set()
                for frame in frames(response.iter_text()):
                    self.frames.put(frame)
        except Exception as exc:  # noqa: BLE001 - closing the client ends the read
            self.error = exc
        finally:
            self._ready.set()
            self.frames.put(None)

    def next_event(self, timeout: float = 10.0) -> Frame | None:
        """The next event (not the opening `retry:`), or None when the stream ended."""
        while True:
            frame = self.frames.get(timeout=timeout)
            if frame is None or frame.event is not None:
                return frame

    def close(self) -> None:
        self._client.close()


class ResumingStream:
    """An SSE client that resumes as a browser's EventSource does, on a background thread.

    When a stream ends it waits the last `retry:` it was sent and reconnects with
    `Last-Event-ID`; it records the status of every (re)connection and every event.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        import threading

        import httpx

        self.url, self.headers = url, headers
        self.statuses: list[int] = []  # one per connection: the first, then each resume
        self.resumed_from: list[str | None] = []  # the Last-Event-ID each connection sent
        self.events: list[Frame] = []
        self.retry_ms = 3000
        self.error: Exception | None = None
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._connected.wait(10):
            raise AssertionError(f"no response from {url}")

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._read_once()
                self._stopping.wait(self.retry_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - closing the client ends the read
            if not self._stopping.is_set():
                self.error = exc

    def _read_once(self) -> None:
        last = self.events[-1].id if self.events else None
        headers = {**self.headers, **({"Last-Event-ID": last} if last else {})}
        with self._client.stream("GET", self.url, headers=headers) as response:
            self.statuses.append(response.status_code)
            self.resumed_from.append(last)
            self._connected.set()
            if response.status_code != 200:
                return
            for frame in frames(response.iter_text()):
                if frame.retry is not None:
                    self.retry_ms = frame.retry
                if frame.event is not None:
                    self.events.append(frame)

    def close(self) -> None:
        """Stop reading (and resuming); the read in progress ends with its next chunk."""
        self._stopping.set()
        self._client.close()
        self._thread.join(timeout=1)
