"""A live event subscription that survives disconnects.

Reconnects with exponential backoff and full jitter (the server's `retry:` as
the base), resumes with `Last-Event-ID` so nothing is lost or repeated,
treats `heartbeat_timeout` seconds without a byte (heartbeat comments
included) as a dead connection, and refreshes the access token before
reconnecting when it has expired or was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from flet_backend_client.errors import ApiError, error_from_response, parse_retry_after
from flet_backend_client.models import Event
from flet_backend_client.session import backoff_delay

if TYPE_CHECKING:
    from flet_backend_client.session import Session

RESET = "stream.reset"


class EventStream:
    """Async iterator of `Event`s from `GET /api/v1/events`.

    Use as `async with client.events(...) as stream: async for event in stream:`.
    `last_event_id` is the cursor of the last event seen: keep it to resume
    later with `client.events(last_event_id=...)`. A `stream.reset` event
    means events were missed: refetch what you show, then carry on.

    Raises (from iteration):
        ForbiddenError: A requested topic is not allowed (not retried).
        AuthError: The session ended and the token could not be refreshed.
        ApiError: Any other 4xx refusal of the subscription.
    """

    def __init__(
        self,
        session: Session,
        topics: Sequence[str] = (),
        last_event_id: str | None = None,
        heartbeat_timeout: float = 45.0,
        max_backoff: float = 30.0,
        buffer: int = 1000,
    ) -> None:
        self._session = session
        self.topics = tuple(topics)
        self.last_event_id = last_event_id
        self.heartbeat_timeout = heartbeat_timeout
        self.max_backoff = max_backoff
        self.retry_ms = 3000
        self.connects = 0
        self._wire_id = last_event_id
        self._attempt = 0
        self._delay: float | None = None
        self._response: httpx.Response | None = None
        self._frames: AsyncIterator[ServerSentEvent] | None = None
        self._refused_401 = 0
        self._closed = False
        self._queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue(buffer)
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventStream:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        self.start()
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # stay ended for later calls
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._closed = True
            raise item
        if item.id:
            self.last_event_id = item.id
        return item

    def start(self) -> None:
        """Start connecting in the background (iteration does it on its own)."""
        if self._pump is None and not self._closed:
            self._pump = asyncio.get_running_loop().create_task(self._run())

    @property
    def connected(self) -> bool:
        """Whether a connection is open right now."""
        return self._frames is not None

    async def aclose(self) -> None:
        """Close the connection and end the iteration."""
        self._closed = True
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        await self._drop(backoff=False)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def _run(self) -> None:
        """Connect, read, reconnect until closed; hand events (or the fatal error) over."""
        try:
            while not self._closed:
                event = await self._next_from_wire()
                if event is not None:
                    await self._queue.put(event)
        except Exception as exc:  # noqa: BLE001 - handed to the reader, raised there
            await self._queue.put(exc)
        finally:
            await self._drop(backoff=False)

    async def _next_from_wire(self) -> Event | None:
        if self._frames is None:
            await self._wait_before_connect()
            await self._connect()
            return None
        try:
            sse = await self._frames.__anext__()
        except (StopAsyncIteration, httpx.TransportError, SSEError):
            await self._drop(backoff=True)
            return None
        return self._accept(sse)

    def _accept(self, sse: ServerSentEvent) -> Event | None:
        if sse.retry is not None:
            self.retry_ms = sse.retry
        if not sse.data:
            return None  # a `retry:`-only block (or an event without data) is not dispatched
        self._attempt = 0
        if sse.id:
            self._wire_id = sse.id
        return Event.from_sse(sse.id, sse.event, sse.data)

    async def _wait_before_connect(self) -> None:
        if self._delay is not None:
            await asyncio.sleep(self._delay)
            self._delay = None

    async def _drop(self, *, backoff: bool, wait: float | None = None) -> None:
        """Close the current connection; schedule the next attempt's delay."""
        self._frames = None
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):
                await response.aclose()
        if backoff:
            base = max(self.retry_ms / 1000, 0.05)
            delay = backoff_delay(self._attempt, base=base, cap=self.max_backoff)
            self._delay = max(delay, wait or 0.0)
            self._attempt += 1

    async def _open(self, token: str | None) -> httpx.Response:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self._wire_id:
            headers["Last-Event-ID"] = self._wire_id
        params = {"topics": ",".join(self.topics)} if self.topics else None
        timeout = httpx.Timeout(self._session.timeout, read=self.heartbeat_timeout)
        request = self._session.http.build_request(
            "GET", "/events", headers=headers, params=params, timeout=timeout
        )
        return await self._session.http.send(request, stream=True)

    async def _connect(self) -> None:
        """Open the stream once; on failure schedule a retry or raise."""
        try:
            token = await self._session.access_token()
            response = await self._open(token)
        except (httpx.TransportError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status < 500:
                raise
            await self._drop(backoff=True)
            return
        self._response = response
        if response.status_code == 200:
            self.connects += 1
            self._refused_401 = 0
            self._frames = EventSource(response).aiter_sse()
            return
        await response.aread()
        await self._refused(response, token)

    async def _refused(self, response: httpx.Response, token: str | None) -> None:
        error = error_from_response(response)
        status = response.status_code
        if status == 401 and token is not None and self._refused_401 < 2:
            self._refused_401 += 1
            await self._drop(backoff=False)
            await self._session.refresh(token)  # raises AuthError when the session ended
            return
        if status < 500 and status != 429:
            await self._drop(backoff=False)
            raise error
        await self._drop(backoff=True, wait=parse_retry_after(response.headers.get("Retry-After")))
