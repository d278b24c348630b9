"""The HTTP layer: Bearer auth, one refresh at a time, retries with backoff."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from flet_backend_client.errors import (
    ApiError,
    AuthError,
    ConnectionFailed,
    error_from_response,
    parse_retry_after,
)
from flet_backend_client.tokens import MemoryTokenStore, Tokens, TokenStore

API_PREFIX = "/api/v1"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_DELAY = 30.0

BodyFactory = Callable[[], AsyncIterator[bytes]]


def backoff_delay(attempt: int, base: float = 0.25, cap: float = MAX_RETRY_DELAY) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - not cryptographic


class Session:
    """Sends API requests with the current tokens and keeps them fresh.

    Args:
        base_url: The server's address (`http://host:port`); `/api/v1` is added.
        token_store: Where tokens are loaded from and saved to.
        timeout: Seconds for connecting and for each read.
        transport: An httpx transport to use instead of the network (for tests).
        user_agent: Sent as `User-Agent` (the server shows it in the device list).
    """

    def __init__(
        self,
        base_url: str,
        token_store: TokenStore | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "flet-backend-client",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_url = self.base_url + API_PREFIX
        self.store: TokenStore = token_store if token_store is not None else MemoryTokenStore()
        self.timeout = timeout
        self.http = httpx.AsyncClient(
            base_url=self.api_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": user_agent},
        )
        self.tokens: Tokens | None = None
        self.restored = False
        self._refresh_lock = asyncio.Lock()

    async def restore(self) -> Tokens | None:
        """Load the tokens from the store (once; later calls reload)."""
        self.tokens = await self.store.load()
        self.restored = True
        return self.tokens

    async def set_tokens(self, tokens: Tokens | None) -> None:
        """Use and save new tokens (None signs out locally)."""
        self.tokens = tokens
        self.restored = True
        await self.store.save(tokens)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def access_token(self) -> str | None:
        """The access token to send, refreshed first when it is known to have expired."""
        if not self.restored:
            await self.restore()
        tokens = self.tokens
        if tokens is not None and tokens.access_expired():
            tokens = await self.refresh(tokens.access_token)
        return tokens.access_token if tokens is not None else None

    async def refresh(self, failed_access: str | None) -> Tokens:
        """Exchange the refresh token for a new pair, one refresh at a time.

        `failed_access` is the access token that was refused: when another
        caller already replaced it, its new pair is returned without a second
        refresh (each refresh token may be spent only once).

        Raises:
            AuthError: The refresh was refused; the tokens are cleared.
            ConnectionFailed: The server could not be reached (tokens kept).
        """
        async with self._refresh_lock:
            current = self.tokens
            if current is None:
                raise AuthError(401, "unauthorized", "Not signed in.")
            if failed_access is not None and current.access_token != failed_access:
                return current
            try:
                response = await self.http.post(
                    "/auth/refresh",
                    headers={"Authorization": f"Bearer {current.refresh_token}"},
                )
            except httpx.TransportError as exc:
                raise ConnectionFailed(f"refresh failed: {exc!r}") from exc
            if response.status_code == 200:
                new = Tokens.from_dict(response.json())
                await self.set_tokens(new)
                return new
            error = error_from_response(response)
            if response.status_code >= 500 or response.status_code == 429:
                raise error
            await self.set_tokens(None)
            raise AuthError(error.status, error.error, error.message, error.errors)

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: BodyFactory | None = None,
        retries: int = 0,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send a request and return a successful response (read fully).

        Args:
            method: HTTP method.
            path: Path under `/api/v1`.
            auth: Send the Bearer token (and refresh once on 401).
            json: JSON body.
            params: Query parameters (None values are dropped).
            headers: Extra headers.
            body: Makes a fresh streamed body for each attempt.
            retries: How many times to retry on connection errors, 429 and 5xx;
                only for requests that are safe to repeat.
            ok: Error statuses to return instead of raising (e.g. 412).

        Raises:
            ApiError: The server answered with an error (a subclass per slug).
            ConnectionFailed: The server could not be reached.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        refreshed = False
        while True:
            sent_token = await self.access_token() if auth else None
            request_headers = dict(headers or {})
            if sent_token:
                request_headers["Authorization"] = f"Bearer {sent_token}"
            try:
                response = await self.http.request(
                    method,
                    path,
                    json=json,
                    params=query,
                    headers=request_headers,
                    content=body() if body is not None else None,
                )
            except httpx.TransportError as exc:
                retry = attempt < retries or (isinstance(exc, httpx.ConnectError) and attempt < 1)
                if not retry:
                    raise ConnectionFailed(f"{method} {path}: {exc!r}") from exc
                await asyncio.sleep(backoff_delay(attempt))
                attempt += 1
                continue
            status = response.status_code
            if status == 401 and sent_token and not refreshed:
                refreshed = True
                await self.refresh(sent_token)
                continue
            if status in RETRYABLE_STATUS and attempt < retries:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                delay = min(wait, MAX_RETRY_DELAY) if wait is not None else backoff_delay(attempt)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if status >= 400 and status not in ok:
                raise error_from_response(response)
            return response

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request (as `request`) and return its JSON body."""
        response = await self.request(method, path, **kwargs)
        return response.json() if response.content else None


__all__ = ["ApiError", "Session", "backoff_delay"]
