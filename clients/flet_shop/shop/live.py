"""The session's live-event loop: one SSE stream for the products topic and the user."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from flet_backend_client import AsyncClient, AuthError, Event

log = logging.getLogger(__name__)
RETRY_SECONDS = 3.0


async def follow_events(
    client: AsyncClient, handle: Callable[[Event], Awaitable[None]], topics: list[str]
) -> None:
    """Pass every live event to `handle` until cancelled or signed out.

    The SDK's stream reconnects by itself and resumes from the last event id; this loop
    only restarts it after an unexpected error.

    Args:
        client: A signed-in client.
        handle: Called for each event, in order.
        topics: Public topics besides the user's own channel (e.g. `["products"]`).
    """
    while True:
        try:
            async with client.events(topics=topics) as stream:
                async for event in stream:
                    await handle(event)
        except AuthError:
            log.info("live events: signed out")
            return
        except Exception:  # keep the app live: log, wait, reconnect
            log.exception("live events failed; reconnecting")
        await asyncio.sleep(RETRY_SECONDS)
