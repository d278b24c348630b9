"""The SDK against a live server: tokens, orders, pagination, uploads, the blocking client."""

from __future__ import annotations

import asyncio
import io
import os
import random
import uuid
from decimal import Decimal

import httpx
import pytest
from flet_backend_client import (
    ApiError,
    AsyncClient,
    AuthError,
    Client,
    ForbiddenError,
    InsufficientStockError,
    MemoryTokenStore,
    NotFoundError,
    Product,
    Tokens,
    ValidationError,
)
from sdk_stack import ADMIN_EMAIL, PASSWORD, Stack, run, unique_email

pytestmark = pytest.mark.slow


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real network transport, recording each request (method, path, headers)."""

    def __init__(self, drop_first_response_of: str | None = None) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []
        self.drop_first_response_of = drop_first_response_of

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await super().handle_async_request(request)
        if self.drop_first_response_of == f"{request.method} {request.url.path}":
            # The server did the work; the client never hears back (a dropped connection).
            self.drop_first_response_of = None
            await response.aclose()
            raise httpx.ReadError("connection dropped after the request was sent")
        return response

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if (r.method, r.url.path) == (method, path))


async def signed_in(stack: Stack, email: str | None = None, **kwargs: object) -> AsyncClient:
    client = AsyncClient(stack.base_url, **kwargs)  # type: ignore[arg-type]
    if email is None:
        email = unique_email()
        await client.register(email, PASSWORD, name="Test User")
    await client.login(email, PASSWORD)
    return client


async def new_product(admin: AsyncClient, stock: int = 10, price: str = "9.99") -> Product:
    return await admin.create_product(
        sku=f"SKU-{uuid.uuid4().hex[:10]}", name="Lamp", price=Decimal(price), stock=stock
    )


def refresh_lines(stack: Stack) -> int:
    """Requests to /auth/refresh the server logged (one JSON line per request)."""
    return sum(1 for line in stack.output().splitlines() if "/api/v1/auth/refresh" in line)


def test_login_me_and_logout(stack: Stack) -> None:
    async def scenario() -> None:
        store = MemoryTokenStore()
        email = unique_email()
        async with AsyncClient(stack.base_url, token_store=store) as client:
            user = await client.register(email, PASSWORD, name="Ada")
            assert (user.email, user.full_name, user.role) == (email, "Ada", "user")
            assert not client.is_authenticated
            with pytest.raises(AuthError) as wrong:
                await client.login(email, "wrong password!")
            assert wrong.value.error == "invalid_credentials"
            assert (await client.login(email, PASSWORD)).id == user.id
            assert client.is_authenticated
            assert store.tokens is not None
            assert (await client.me()).id == user.id

        async with AsyncClient(stack.base_url, token_store=store) as restored:
            assert restored.is_authenticated  # loaded from the store
            assert (await restored.me()).email == email
            await restored.logout()
            assert not restored.is_authenticated
            assert store.tokens is None
            with pytest.raises(AuthError):
                await restored.me()

    run(scenario())


def test_refresh_under_20_concurrent_calls_makes_exactly_one(stack: Stack) -> None:
    async def scenario() -> None:
        first = await signed_in(stack)
        assert first.tokens is not None
        original = first.tokens
        await first.aclose()
        # The access token is refused (as an expired one is); the refresh token is good.
        store = MemoryTokenStore(Tokens("stale.access.token", original.refresh_token))
        transport = CountingTransport()
        before = refresh_lines(stack)
        async with AsyncClient(stack.base_url, token_store=store, transport=transport) as client:
            users = await asyncio.gather(*(client.me() for _ in range(20)))
        assert {u.email for u in users} == {users[0].email}
        assert len(users) == 20
        assert transport.count("POST", "/api/v1/auth/refresh") == 1
        assert transport.count("GET", "/api/v1/users/me") == 40  # each refused once, then retried
        await asyncio.sleep(0.5)  # let the server's log line through
        assert refresh_lines(stack) - before == 1
        # Rotation: the new pair is saved; the old refresh token is spent.
        assert store.tokens is not None
        assert store.tokens.refresh_token != original.refresh_token
        assert store.tokens.access_token != "stale.access.token"

    run(scenario())


def test_a_failed_refresh_clears_the_tokens(stack: Stack) -> None:
    async def scenario() -> None:
        store = MemoryTokenStore(Tokens("stale.access.token", "not.a.refresh-token"))
        async with AsyncClient(stack.base_url, token_store=store) as client:
            assert client.is_authenticated
            with pytest.raises(AuthError):
                await client.me()
            assert not client.is_authenticated
            assert store.tokens is None

    run(scenario())


def test_insufficient_stock_raises_with_details(stack: Stack) -> None:
    async def scenario() -> None:
        admin = await signed_in(stack, ADMIN_EMAIL)
        user = await signed_in(stack)
        try:
            short = await new_product(admin, stock=2)
            plenty = await new_product(admin, stock=50)
            with pytest.raises(InsufficientStockError) as caught:
                await user.place_order([(plenty.id, 1), (short.id, 5)])
            error = caught.value
            assert (error.status, error.error) == (409, "insufficient_stock")
            assert error.shortages == [{"product_id": short.id, "requested": 5, "available": 2}]
            assert (await user.get_product(plenty.id)).stock == 50  # nothing was taken
            with pytest.raises(ValidationError):
                await user.place_order([(plenty.id, 0)])
            with pytest.raises(ForbiddenError):
                await user.create_product(sku="NOPE", name="x", price="1.00")
            with pytest.raises(NotFoundError):
                await user.get_order(999_999)
        finally:
            await admin.aclose()
            await user.aclose()

    run(scenario())


def test_a_retried_order_is_placed_once(stack: Stack) -> None:
    async def scenario() -> None:
        admin = await signed_in(stack, ADMIN_EMAIL)
        transport = CountingTransport(drop_first_response_of="POST /api/v1/orders")
        user = await signed_in(stack, transport=transport)
        try:
            product = await new_product(admin, stock=10, price="2.50")
            order = await user.place_order([(product.id, 3)], note="gift")
            posts = [r for r in transport.requests if r.url.path == "/api/v1/orders"]
            assert len(posts) == 2  # the first answer was lost, so the SDK retried
            keys = {r.headers["Idempotency-Key"] for r in posts}
            assert len(keys) == 1  # with the same key
            assert (order.total, order.note, order.items[0].quantity) == (
                Decimal("7.50"),
                "gift",
                3,
            )
            orders = await user.list_orders()
            assert orders.total == 1
            assert orders.items[0].id == order.id
            assert (await user.get_product(product.id)).stock == 7  # stock taken once

            again = await user.place_order([(product.id, 3)], "gift", idempotency_key=keys.pop())
            assert again.id == order.id  # an explicit key replays too
            fresh = await user.place_order([(product.id, 1)])  # a new call is a new intent
            assert fresh.id != order.id
            cancelled = await user.cancel_order(fresh.id)
            assert cancelled.status == "cancelled"
            confirmed = await admin.set_order_status(order.id, "confirmed")
            assert confirmed.status == "confirmed"
            notes = await user.list_notifications(unread=True)
            assert notes.total >= 1
            await user.mark_notification_read(notes.items[0].id)
            assert await user.mark_all_notifications_read() == notes.total - 1
        finally:
            await admin.aclose()
            await user.aclose()

    run(scenario())


def test_pagination_walks_every_page(stack: Stack) -> None:
    async def scenario() -> None:
        tag = f"pg{uuid.uuid4().hex[:6]}"
        admin = await signed_in(stack, ADMIN_EMAIL)
        try:
            await asyncio.gather(
                *(
                    admin.create_product(
                        sku=f"{tag}-{n:02d}",
                        name=f"{tag} item {n:02d}",
                        price=Decimal(n + 1),
                        stock=n % 3,
                    )  # fmt: skip
                    for n in range(45)
                )
            )
            first = await admin.list_products(q=tag, page_size=10, sort="name")
            assert (first.total, first.total_pages, first.page, len(first.items)) == (45, 5, 1, 10)
            last = await admin.list_products(q=tag, page=5, page_size=10)
            assert len(last.items) == 5
            assert not last.has_next
            skus = [p.sku async for p in admin.iter_products(q=tag, page_size=10, sort="name")]
            assert skus == [f"{tag}-{n:02d}" for n in range(45)]
            in_stock = [p async for p in admin.iter_products(q=tag, page_size=7, in_stock=True)]
            assert len(in_stock) == 30
            assert all(p.stock > 0 for p in in_stock)
            cheap = await admin.list_products(q=tag, max_price="5.00", sort="-price")
            assert [p.price for p in cheap.items] == [Decimal(n) for n in (5, 4, 3, 2, 1)]
        finally:
            await admin.aclose()

    run(scenario())


def test_update_product_uses_the_etag(stack: Stack) -> None:
    async def scenario() -> None:
        admin = await signed_in(stack, ADMIN_EMAIL)
        try:
            product = await new_product(admin)
            updated = await admin.update_product(product.id, price=Decimal("12.34"), stock=4)
            assert (updated.price, updated.stock) == (Decimal("12.34"), 4)
            assert (await admin.get_product(product.id)).price == Decimal("12.34")
        finally:
            await admin.aclose()

    run(scenario())


def png_bytes() -> bytes:
    from PIL import Image

    rng = random.Random(7)  # noqa: S311 - test data
    image = Image.new("RGB", (300, 300))
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                   for _ in range(300 * 300)])  # fmt: skip
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_file_reports_progress_and_renditions_arrive(stack: Stack) -> None:
    data = png_bytes()
    assert len(data) > 3 * 64 * 1024

    async def scenario() -> None:
        user = await signed_in(stack)
        progress: list[tuple[int, int]] = []
        try:
            info = await user.upload_file(
                data, filename="noise.png", on_progress=lambda s, t: progress.append((s, t))
            )
            assert (info.filename, info.size, info.content_type) == ("noise.png", len(data),
                                                                    "image/png")  # fmt: skip
            assert len(progress) >= 4
            sent = [s for s, _ in progress]
            assert sent == sorted(sent)
            assert progress[-1][0] == progress[-1][1]
            assert (await user.get_file(info.id)).id == info.id
            assert await user.download_file(info.id) == data
            assert user.file_url(info.id, "thumb").endswith(
                f"/files/{info.id}/content?variant=thumb"
            )
            assert info.rendition_job_id is not None
            job = await user.wait_for_job(info.rendition_job_id, timeout=60)
            assert job.status == "succeeded"
            ready = await user.get_file(info.id)
            assert set(ready.renditions) == {"thumb", "mobile", "desktop"}
            thumb = ready.renditions["thumb"]
            assert (thumb.width, thumb.height, thumb.content_type) == (160, 160, "image/webp")
            assert thumb.url.startswith(f"{stack.base_url}/api/v1/files/{info.id}/content?")
            assert ready.url.startswith(stack.base_url)
            tokens = user.tokens
            assert tokens is not None
            fetched = httpx.get(
                thumb.url, headers={"Authorization": f"Bearer {tokens.access_token}"}
            )
            assert fetched.status_code == 200
            assert fetched.headers["cache-control"] == "private, max-age=31536000, immutable"
        finally:
            await user.aclose()

    run(scenario())


def test_the_blocking_client_signs_in_and_lists(stack: Stack) -> None:
    with Client(stack.base_url) as client:
        assert not client.is_authenticated
        user = client.login(ADMIN_EMAIL, PASSWORD)
        assert user.is_admin
        assert client.is_authenticated
        created = client.create_product(sku=f"SYNC-{os.getpid()}", name="Sync", price="3.00")
        page = client.list_products(q="Sync", page_size=5)
        assert created.id in [p.id for p in page.items]
        assert any(p.id == created.id for p in client.iter_products(q="Sync"))
        with pytest.raises(ApiError) as missing:
            client.get_product(987_654)
        assert missing.value.status == 404
