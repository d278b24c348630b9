"""Streamed uploads with progress, from a path or from bytes: multipart, or a raw body."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK_SIZE = 64 * 1024

Source = str | os.PathLike[str] | bytes
ProgressCallback = Callable[[int, int], None]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


@dataclass(frozen=True)
class MultipartFile:
    """One file sent as the multipart field `field`, in chunks.

    The body is re-created for every attempt (`body()`), so a request that is
    retried (after a token refresh) sends it again from the start.
    """

    source: Source
    filename: str
    content_type: str
    field: str = "file"
    boundary: str = ""
    chunk_size: int = CHUNK_SIZE

    @classmethod
    def build(
        cls,
        source: Source,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        default_name: str = "upload.bin",
    ) -> MultipartFile:
        """Describe an upload, guessing the name and type from a path when not given."""
        if isinstance(source, bytes):
            name = filename or default_name
        else:
            name = filename or Path(source).name
        guessed = mimetypes.guess_type(name)[0]
        return cls(
            source=source,
            filename=name,
            content_type=content_type or guessed or "application/octet-stream",
            boundary=f"flet-backend-client-{secrets.token_hex(12)}",
        )

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        if isinstance(self.source, bytes):
            return len(self.source)
        return os.path.getsize(self.source)

    @property
    def head(self) -> bytes:
        """The part's headers, before the file's bytes."""
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{self.field}"; '
            f'filename="{_quote(self.filename)}"\r\n'
            f"Content-Type: {self.content_type}\r\n\r\n"
        ).encode()

    @property
    def tail(self) -> bytes:
        """The closing boundary, after the file's bytes."""
        return f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_length(self) -> int:
        """The whole body's length."""
        return len(self.head) + self.size + len(self.tail)

    @property
    def headers(self) -> dict[str, str]:
        """`Content-Type` (with the boundary) and `Content-Length` for the request."""
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.content_length),
        }

    def body(self, on_progress: ProgressCallback | None = None) -> AsyncIterator[bytes]:
        """A fresh body stream calling `on_progress(sent, total)` after each chunk."""
        return self._stream(on_progress)

    async def _stream(self, on_progress: ProgressCallback | None) -> AsyncIterator[bytes]:
        total = self.content_length
        sent = 0
        async for chunk in self._chunks():
            yield chunk
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, total)

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield self.head
        if isinstance(self.source, bytes):
            for start in range(0, len(self.source), self.chunk_size):
                yield self.source[start : start + self.chunk_size]
        else:
            handle = await asyncio.to_thread(open, self.source, "rb")
            try:
                while chunk := await asyncio.to_thread(handle.read, self.chunk_size):
                    yield chunk
            finally:
                handle.close()
        yield self.tail


def source_size(source: Source) -> int:
    """The size in bytes of a path's file or of the bytes themselves."""
    return len(source) if isinstance(source, bytes) else os.path.getsize(source)


async def raw_body(
    source: Source, on_progress: ProgressCallback | None = None, chunk_size: int = CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """The bytes of `source` in chunks (for a PUT to an upload URL), reporting progress."""
    total = source_size(source)
    sent = 0
    if isinstance(source, bytes):
        chunks: list[bytes] = [source[i : i + chunk_size] for i in range(0, total, chunk_size)]
        for chunk in chunks:
            yield chunk
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, total)
        return
    handle = await asyncio.to_thread(open, source, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, total)
    finally:
        handle.close()
