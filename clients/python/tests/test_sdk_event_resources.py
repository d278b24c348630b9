"""A live event's resource is what a GET of it gives: products, orders, notifications."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pytest
from flet_backend_client import AsyncClient, Event, EventStream, Notification, Order, Product
from sdk_stack import ADMIN_EMAIL, PASSWORD, Stack, run, unique_email

pytestmark = pytest.mark.slow

WITH_WORKER = False  # events are published by the web process; nothing here is queued


async def next_event(stream: EventStream, type_: str, resource_id: int) -> Event:
    """The next `type_` event about the resource `resource_id`, skipping others."""
    async with asyncio.timeout(20):
        async for event in stream:
            if event.type == type_ and event.data.get("id") == resource_id:
                return event
    raise AssertionError(f"the stream ended before a {type_} event")


async def until_connected(stream: EventStream) -> None:
    stream.start()
    deadline = time.monotonic() + 20
    while not stream.connected:
        assert time.monotonic() < deadline, "the stream did not connect"
        await asyncio.sleep(0.05)


def test_event_resources_equal_what_the_api_returns(stack: Stack) -> None:
    async def scenario() -> None:
        admin, user = AsyncClient(stack.base_url), AsyncClient(stack.base_url)
        email = unique_email()
        await admin.login(ADMIN_EMAIL, PASSWORD)
        await user.register(email, PASSWORD)
        await user.login(email, PASSWORD)
        try:
            lamp = await admin.create_product(
                sku=f"SKU-{uuid.uuid4().hex[:10]}", name="Lamp", description="Warm light.",
                price=Decimal("9.90"), stock=5,
            )  # fmt: skip
            async with user.events(topics=["products"]) as stream:
                await until_connected(stream)
                placed = await user.place_order([(lamp.id, 2)])

                stock = await next_event(stream, "product.updated", lamp.id)
                assert stock.resource == await user.get_product(lamp.id)
                assert isinstance(stock.resource, Product)
                assert (stock.resource.stock, stock.resource.description) == (3, "Warm light.")

                created = await next_event(stream, "order.created", placed.id)
                assert created.resource == placed == await user.get_order(placed.id)
                assert isinstance(created.resource, Order)
                assert [line.quantity for line in created.resource.items] == [2]

                await admin.set_order_status(placed.id, "confirmed")
                moved = await next_event(stream, "order.status_changed", placed.id)
                assert moved.resource == await user.get_order(placed.id)
                [note] = (await user.list_notifications()).items
                told = await next_event(stream, "notification.created", note.id)
                assert isinstance(told.resource, Notification)
                assert told.resource == note
        finally:
            await admin.aclose()
            await user.aclose()

    run(scenario())
