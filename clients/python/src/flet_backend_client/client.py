"""`AsyncClient`: accounts, catalog, orders, notifications (jobs, files, operations: mixins)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

import httpx

from flet_backend_client.errors import ApiError, AuthError
from flet_backend_client.jobs_files import JobsAndFiles
from flet_backend_client.models import Notification, Order, Page, Payment, Product, User
from flet_backend_client.operations import Operations
from flet_backend_client.session import Session
from flet_backend_client.signin import ProviderSignIn
from flet_backend_client.tokens import Tokens, TokenStore

T = TypeVar("T")
Price = Decimal | str | int | float
READ_RETRIES = 2
ORDER_RETRIES = 3
PAY_RETRIES = 1  # a lost answer is retried; a provider that is down is the app's to show


def _jsonable(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Money as decimal strings, never floats."""
    return {k: str(v) if isinstance(v, Decimal | float) else v for k, v in fields.items()}


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _price(value: Price | None) -> str | None:
    return None if value is None else str(value)


class AsyncClient(JobsAndFiles, Operations, ProviderSignIn):
    """Async client of the flet-backend API.

    Args:
        base_url: The server's address, e.g. `http://127.0.0.1:8000` (`/api/v1` is added).
        token_store: Where tokens are kept between runs (default: memory only).
        timeout: Seconds to connect and for each read.
        transport: An httpx transport to use instead of the network.
        user_agent: Sent as `User-Agent`; the server lists it with the device's sessions.

    Use `async with AsyncClient(...) as client:` or call `await client.aclose()`.
    Tokens are refreshed automatically: on a 401 the client refreshes once
    (one refresh at a time, however many calls are waiting) and retries.
    """

    def __init__(
        self,
        base_url: str,
        token_store: TokenStore | None = None,
        timeout: float = 10.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "flet-backend-client",
    ) -> None:
        self._session = Session(base_url, token_store, timeout, transport, user_agent)

    async def __aenter__(self) -> AsyncClient:
        await self.restore()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (tokens stay in the store)."""
        await self._session.aclose()

    @property
    def base_url(self) -> str:
        """The server's address as given."""
        return self._session.base_url

    @property
    def is_authenticated(self) -> bool:
        """Whether the client holds tokens (after `login` or `restore`)."""
        return self._session.tokens is not None

    @property
    def tokens(self) -> Tokens | None:
        """The current token pair, if signed in."""
        return self._session.tokens

    # --- accounts -------------------------------------------------------------------------

    async def restore(self) -> bool:
        """Load tokens from the token store; return whether the client is signed in."""
        return await self._session.restore() is not None

    async def register(self, email: str, password: str, name: str | None = None) -> User:
        """Create an account (it does not sign in; call `login` next)."""
        payload: dict[str, Any] = {"email": email, "password": password}
        if name is not None:
            payload["full_name"] = name
        return User.from_json(
            await self._session.json("POST", "/auth/register", json=payload, auth=False)
        )

    async def login(self, email: str, password: str, device_name: str | None = None) -> User:
        """Sign in; the tokens are saved to the token store.

        Raises:
            AuthError: Wrong email or password (`invalid_credentials`).
        """
        payload = {"email": email, "password": password}
        if device_name is not None:
            payload["device_name"] = device_name
        body = await self._session.json("POST", "/auth/login", json=payload, auth=False)
        await self._session.set_tokens(Tokens.from_dict(body))
        return User.from_json(body["user"])

    async def logout(self, everywhere: bool = False) -> None:
        """Sign out this device (or every device); local tokens are forgotten either way."""
        if self._session.tokens is None and not self._session.restored:
            await self._session.restore()
        try:
            if self._session.tokens is not None:
                scope = "global" if everywhere else "local"
                await self._session.request("POST", "/auth/logout", params={"scope": scope})
        except AuthError:
            pass  # already signed out on the server
        finally:
            await self._session.set_tokens(None)

    async def me(self) -> User:
        """Return the signed-in user."""
        return User.from_json(await self._session.json("GET", "/users/me", retries=READ_RETRIES))

    async def update_me(self, full_name: str) -> User:
        """Change the signed-in user's name."""
        body = await self._session.json("PATCH", "/users/me", json={"full_name": full_name})
        return User.from_json(body)

    # --- catalog --------------------------------------------------------------------------

    async def _page(self, path: str, params: dict[str, Any], build: Callable[[Any], T]) -> Page[T]:
        response = await self._session.request("GET", path, params=params, retries=READ_RETRIES)
        items = [build(item) for item in response.json()]
        header = response.headers.get("X-Pagination")
        return Page.from_header(items, header, int(params["page"]), int(params["page_size"]))

    async def list_products(
        self,
        q: str | None = None,
        page: int = 1,
        page_size: int = 20,
        in_stock: bool | None = None,
        sort: str | None = None,
        min_price: Price | None = None,
        max_price: Price | None = None,
    ) -> Page[Product]:
        """List products (anonymous callers see active ones only).

        Args:
            q: Search in name, sku and description.
            page: Page number from 1.
            page_size: Items per page (at most 100).
            in_stock: Only products with (True) or without (False) stock.
            sort: `name`, `price` or `created_at`, `-` first for descending.
            min_price: Lowest price.
            max_price: Highest price.
        """
        params = {
            "q": q, "page": page, "page_size": page_size, "in_stock": _flag(in_stock),
            "sort": sort, "min_price": _price(min_price), "max_price": _price(max_price),
        }  # fmt: skip
        return await self._page("/products", params, Product.from_json)

    async def iter_products(
        self,
        q: str | None = None,
        page_size: int = 100,
        in_stock: bool | None = None,
        sort: str | None = None,
        min_price: Price | None = None,
        max_price: Price | None = None,
    ) -> AsyncIterator[Product]:
        """Yield every matching product, walking all pages (filters as `list_products`)."""
        page = 1
        while True:
            result = await self.list_products(
                q, page, page_size, in_stock, sort, min_price, max_price
            )
            for product in result.items:
                yield product
            if not result.items or page >= result.total_pages:
                return
            page += 1

    async def get_product(self, product_id: int) -> Product:
        """Return one product."""
        body = await self._session.json("GET", f"/products/{product_id}", retries=READ_RETRIES)
        return Product.from_json(body)

    async def create_product(self, **fields: Any) -> Product:
        """Add a product (admin): `sku`, `name`, `price` required; `description`, `currency`, ...

        Raises:
            ConflictError: `sku_taken`.
        """
        body = await self._session.json("POST", "/products", json=_jsonable(fields))
        return Product.from_json(body)

    async def update_product(self, product_id: int, **changes: Any) -> Product:
        """Change a product (admin), guarded by its ETag; retried once if it changed meanwhile.

        Raises:
            PreconditionFailedError: It changed again between the retry's read and write.
        """
        path = f"/products/{product_id}"
        for attempt in range(2):
            current = await self._session.request("GET", path, retries=READ_RETRIES)
            etag = current.headers.get("ETag", "")
            response = await self._session.request(
                "PATCH", path, json=_jsonable(changes), headers={"If-Match": etag},
                ok=(412,) if attempt == 0 else (),
            )  # fmt: skip
            if response.status_code != 412:
                return Product.from_json(response.json())
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete_product(self, product_id: int) -> None:
        """Delete (or, once ordered, deactivate) a product (admin)."""
        path = f"/products/{product_id}"
        current = await self._session.request("GET", path, retries=READ_RETRIES)
        etag = current.headers.get("ETag", "")
        await self._session.request("DELETE", path, headers={"If-Match": etag})

    # --- orders ---------------------------------------------------------------------------

    async def place_order(
        self,
        items: Sequence[tuple[int, int]],
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Order:
        """Place an order of `(product_id, quantity)` lines; stock is taken at once.

        An `Idempotency-Key` (generated when not given) makes this call's own
        retries, after a dropped connection, a 5xx or a 429, create one order.

        Raises:
            InsufficientStockError: Some product is short (`shortages` says which).
            ValidationError: An unknown product, or a bad quantity.
        """
        payload: dict[str, Any] = {
            "items": [{"product_id": pid, "quantity": qty} for pid, qty in items]
        }
        if note is not None:
            payload["note"] = note
        key = idempotency_key or uuid.uuid4().hex
        body = await self._session.json(
            "POST", "/orders", json=payload, headers={"Idempotency-Key": key},
            retries=ORDER_RETRIES,
        )  # fmt: skip
        return Order.from_json(body)

    async def list_orders(
        self,
        page: int = 1,
        page_size: int = 20,
        status: str | None = None,
        user_id: int | None = None,
    ) -> Page[Order]:
        """List the caller's orders, newest first (admins: all, or one user's)."""
        params = {"page": page, "page_size": page_size, "status": status, "user_id": user_id}
        return await self._page("/orders", params, Order.from_json)

    async def get_order(self, order_id: int) -> Order:
        """Return one order."""
        body = await self._session.json("GET", f"/orders/{order_id}", retries=READ_RETRIES)
        return Order.from_json(body)

    async def cancel_order(self, order_id: int) -> Order:
        """Cancel a pending or confirmed order; its stock is returned."""
        return Order.from_json(await self._session.json("POST", f"/orders/{order_id}/cancel"))

    async def pay(self, order_id: int) -> Payment:
        """Start paying a pending order: its payment with the provider (Stripe).

        Returns the order's payment, created now or the one it already has
        (so calling again, or this call's own retry after a dropped
        connection, never charges twice). Complete it with the provider's
        client SDK and `client_secret`; the order becomes `confirmed` when
        the provider reports success (`payment.succeeded` and
        `order.status_changed` events follow).

        Raises:
            ConflictError: `order_not_payable`, the order is not pending.
            NotFoundError: Not one of the caller's orders.
            ServiceUnavailableError: `provider_unavailable` (its `retry_after` says
                when to try again: at once while the provider's breaker is open).
        """
        body = await self._session.json("POST", f"/orders/{order_id}/pay", retries=PAY_RETRIES)
        return Payment.from_json(body["payment"])

    async def set_order_status(self, order_id: int, status: str) -> Order:
        """Move an order along pending → confirmed → shipped → delivered (admin)."""
        body = await self._session.json(
            "POST", f"/orders/{order_id}/status", json={"status": status}
        )
        return Order.from_json(body)

    # --- notifications --------------------------------------------------------------------

    async def list_notifications(
        self, unread: bool | None = None, page: int = 1, page_size: int = 20
    ) -> Page[Notification]:
        """List the caller's notifications, newest first (`unread=True`: unread only)."""
        params = {"unread": _flag(unread), "page": page, "page_size": page_size}
        return await self._page("/notifications", params, Notification.from_json)

    async def mark_notification_read(self, notification_id: int) -> Notification:
        """Mark one notification read."""
        body = await self._session.json("POST", f"/notifications/{notification_id}/read")
        return Notification.from_json(body)

    async def mark_all_notifications_read(self) -> int:
        """Mark every notification read; return how many were unread."""
        body = await self._session.json("POST", "/notifications/read-all")
        return int(body.get("updated", 0)) if isinstance(body, dict) else 0


__all__ = ["ApiError", "AsyncClient"]
