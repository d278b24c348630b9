"""Paying through the SDK against a live server (gunicorn + worker) and a Stripe stand-in.

The stand-in is a real local server: the app calls it over HTTP, and it posts
its signed events to the app's webhook over HTTP, as Stripe does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from flet_backend_client import (
    AsyncClient,
    Client,
    ConflictError,
    Event,
    EventStream,
    NotFoundError,
    Order,
    Payment,
)
from sdk_stack import ADMIN_EMAIL, PASSWORD, Stack, run, unique_email

from tests.support.processes import free_port
from tests.support.stripe_stand_in import (
    SECRET_KEY,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    StripeStandIn,
    running_stripe_stand_in,
)

pytestmark = pytest.mark.slow

STRIPE_PORT = free_port()
EXTRA_ENV = {
    "STRIPE_API_BASE": f"http://127.0.0.1:{STRIPE_PORT}",
    "STRIPE_SECRET_KEY": SECRET_KEY,
    "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "STRIPE_TIMEOUT_SECONDS": "2",
}


@pytest.fixture(scope="module")
def stripe(stack: Stack) -> Iterator[StripeStandIn]:
    """The stand-in the stack calls, posting its events to the stack's webhook."""
    with running_stripe_stand_in(f"{stack.base_url}{WEBHOOK_PATH}", port=STRIPE_PORT) as fake:
        yield fake


async def shopper(stack: Stack) -> tuple[AsyncClient, Order]:
    """A new signed-in user with a pending order of one product."""
    admin = AsyncClient(stack.base_url)
    await admin.login(ADMIN_EMAIL, PASSWORD)
    product = await admin.create_product(sku=unique_email("sku")[:30], name="Lamp", price="12.50",
                                         stock=10)  # fmt: skip
    await admin.aclose()
    client = AsyncClient(stack.base_url)
    email = unique_email()
    await client.register(email, PASSWORD)
    await client.login(email, PASSWORD)
    return client, await client.place_order([(product.id, 2)])


async def next_of(stream: EventStream, wanted: set[str]) -> Event:
    async def first() -> Event:
        async for event in stream:
            if event.type in wanted:
                return event
        raise AssertionError("stream ended")

    return await asyncio.wait_for(first(), timeout=15)


def test_pay_then_the_providers_event_confirms_the_order_live(
    stack: Stack, stripe: StripeStandIn
) -> None:
    async def scenario() -> None:
        client, order = await shopper(stack)
        try:
            assert order.payment is None
            async with client.events() as stream:
                payment = await client.pay(order.id)
                assert isinstance(payment, Payment)
                assert (payment.status, payment.amount, payment.order_id) == (
                    "requires_payment", order.total, order.id,
                )  # fmt: skip
                assert payment.is_open
                assert payment.client_secret.startswith(payment.provider_payment_id)
                assert (await client.pay(order.id)).id == payment.id
                assert stripe.creates() == 1
                shown = await client.get_order(order.id)
                assert shown.payment is not None
                assert (shown.payment.id, shown.payment.client_secret) == (payment.id, "")
                stripe.complete(payment.provider_payment_id)
                assert stripe.delivered[-1][1] == 200
                changed = await next_of(stream, {"order.status_changed"})
                paid = await next_of(stream, {"payment.succeeded"})
            assert isinstance(changed.resource, Order)
            assert changed.resource.status == "confirmed"
            assert changed.resource.payment is not None
            assert changed.resource.payment.is_paid
            assert isinstance(paid.resource, Payment)
            assert paid.resource.order_id == order.id
            again = await client.get_order(order.id)
            assert again.status == "confirmed"
            with pytest.raises(ConflictError) as refused:
                await client.pay(order.id)
            assert refused.value.error == "order_not_payable"
            with pytest.raises(NotFoundError):
                await client.pay(order.id + 10_000)
        finally:
            await client.aclose()

    run(scenario())


def test_the_blocking_client_pays_too(stack: Stack, stripe: StripeStandIn) -> None:
    with Client(stack.base_url) as admin:
        admin.login(ADMIN_EMAIL, PASSWORD)
        product = admin.create_product(sku=unique_email("sku")[:30], name="Mug", price="3.00",
                                       stock=5)  # fmt: skip
    with Client(stack.base_url) as client:
        email = unique_email()
        client.register(email, PASSWORD)
        client.login(email, PASSWORD)
        order = client.place_order([(product.id, 1)])
        payment = client.pay(order.id)
        assert (payment.order_id, payment.amount) == (order.id, order.total)
        shown = client.get_order(order.id).payment
        assert shown is not None
        assert shown.id == payment.id
