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
