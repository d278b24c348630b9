"""Live events through the SDK against one gunicorn worker that is killed and frozen for real."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Callable

import pytest
from flask import Flask
from flet_backend_client import (
    AsyncClient,
    Event,
    EventStream,
    ForbiddenError,
    Job,
    MemoryTokenStore,
    Tokens,
)
from sdk_stack import ADMIN_EMAIL, PASSWORD, Stack, run, unique_email

from backend import create_app
from backend.events import publish
from tests.support.processes import descendants

pytestmark = pytest.mark.slow

WEB_CONCURRENCY = 1  # one gunicorn worker: every stream is on it, so killing it drops them all


@pytest.fixture(scope="module")
def publisher(stack: Stack) -> Callable[[str, str, dict[str, object]], str]:
    """Publish events the way `flask publish-event` does, without a process per event."""
    app: Flask = create_app(
        {
            "TESTING": True,
            "ENV": "development",
            "DATABASE_URL": stack.env["DATABASE_URL"],
            "REDIS_URL": stack.env["REDIS_URL"],
        }  # fmt: skip
    )

    def send(channel: str, kind: str, data: dict[str, object]) -> str:
        with app.app_context():
            return publish(channel, kind, data)

    return send


async def admin_client(stack: Stack) -> AsyncClient:
    client = AsyncClient(stack.base_url)
    await client.login(ADMIN_EMAIL, PASSWORD)
    return client


def gunicorn_worker(stack: Stack) -> int:
    workers = descendants(stack.web.popen.pid)
    assert len(workers) == 1, workers
    return workers[0]


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class Collector:
    """Reads a stream in the background, keeping `tick` numbers and every event type."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.ticks: list[int] = []
        self.types: list[str] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.stream:
            self.types.append(event.type)
            if event.type == "tick":
                self.ticks.append(int(event.data["n"]))


def test_the_stream_resumes_after_its_worker_is_killed_with_nothing_lost_or_repeated(
    stack: Stack, publisher: Callable[[str, str, dict[str, object]], str]
) -> None:
    async def scenario() -> None:
        admin = await admin_client(stack)
        stream = admin.events(topics=["products"], heartbeat_timeout=10, max_backoff=1)
        async with stream:
            reader = Collector(stream)
            await until(lambda: stream.connected)
            for n in range(10):
                publisher("products", "tick", {"n": n})
            await until(lambda: len(reader.ticks) == 10)
            os.kill(gunicorn_worker(stack), signal.SIGKILL)  # the connection drops for real
            for n in range(10, 20):  # published while no stream is open
                publisher("products", "tick", {"n": n})
            await until(lambda: stream.connects >= 2, timeout=30)
            for n in range(20, 30):
                publisher("products", "tick", {"n": n})
            created = await admin.create_product(sku=f"EV-{uuid.uuid4().hex[:6]}", name="Live",
                                                 price="1.00")  # fmt: skip
            await until(lambda: "product.created" in reader.types)
            assert reader.ticks == list(range(30))
            assert stream.last_event_id is not None
            assert "products=" in stream.last_event_id
            assert created.id
        await asyncio.wait_for(reader.task, 5)  # closing the stream ends the iteration
        await admin.aclose()

    run(scenario())


def test_a_silent_connection_is_detected_by_the_heartbeat_timeout(
    stack: Stack, publisher: Callable[[str, str, dict[str, object]], str]
) -> None:
    async def scenario() -> None:
        admin = await admin_client(stack)
        stream = admin.events(topics=["products"], heartbeat_timeout=1.5, max_backoff=0.5)
        async with stream:
            reader = Collector(stream)
            await until(lambda: stream.connected)
            publisher("products", "tick", {"n": 0})
            await until(lambda: reader.ticks == [0])
            worker = gunicorn_worker(stack)
            os.kill(worker, signal.SIGSTOP)  # the socket stays open but nothing comes through
            try:
                publisher("products", "tick", {"n": 1})
                await asyncio.sleep(4)
            finally:
                os.kill(worker, signal.SIGCONT)
            publisher("products", "tick", {"n": 2})
            await until(lambda: reader.ticks == [0, 1, 2])
            assert stream.connects >= 2  # it gave up on the frozen connection and resumed
        await admin.aclose()

    run(scenario())


def test_an_unknown_last_event_id_yields_stream_reset_first(
    stack: Stack, publisher: Callable[[str, str, dict[str, object]], str]
) -> None:
    async def scenario() -> None:
        admin = await admin_client(stack)
        async with admin.events(topics=["products"], last_event_id="not-a-cursor") as stream:
            first = await anext(stream)
            assert first.type == "stream.reset"
            assert "products" in first.data["channels"]
            publisher("products", "tick", {"n": 99})
            second: Event = await anext(stream)
            assert (second.type, second.data) == ("tick", {"n": 99})
        await admin.aclose()

    run(scenario())


def test_subscribing_to_a_forbidden_topic_raises(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.base_url) as user:
            email = unique_email()
            await user.register(email, PASSWORD)
            await user.login(email, PASSWORD)
            started = time.monotonic()
            with pytest.raises(ForbiddenError):
                async with user.events(topics=["admin"]) as stream:
                    await anext(stream)
            assert time.monotonic() - started < 5  # refused at once, not retried

    run(scenario())


def test_a_refused_token_is_refreshed_before_subscribing(
    stack: Stack, publisher: Callable[[str, str, dict[str, object]], str]
) -> None:
    async def scenario() -> None:
        admin = await admin_client(stack)
        assert admin.tokens is not None
        me = await admin.me()
        store = MemoryTokenStore(Tokens("stale.access.token", admin.tokens.refresh_token))
        async with AsyncClient(stack.base_url, token_store=store) as client:
            async with client.events() as stream:
                task = asyncio.create_task(anext(stream))
                await until(lambda: stream.connected)
                publisher(f"user:{me.id}", "tick", {"n": 1})
                event = await asyncio.wait_for(task, 10)
                assert event.type == "tick"
            assert store.tokens is not None
            assert store.tokens.access_token != "stale.access.token"
        await admin.aclose()

    run(scenario())


def test_wait_for_job_follows_an_import_to_the_end(stack: Stack) -> None:
    tag = f"IMP{uuid.uuid4().hex[:6]}"
    rows = "".join(f"{tag}-{n},Item {n},,{n}.50,USD,{n}\n" for n in range(1, 6))
    csv = f"sku,name,description,price,currency,stock\n{rows}{tag}-bad,Bad,,oops,USD,1\n"

    async def scenario() -> None:
        admin = await admin_client(stack)
        seen: list[Job] = []
        try:
            job = await admin.import_products(csv.encode())
            assert job.status in ("queued", "started", "succeeded")
            final = await admin.wait_for_job(job.id, on_progress=seen.append, timeout=60)
            assert final.status == "succeeded", final
            assert final.result["created"] == 5
            assert final.result["failed"] == 1
            assert seen
            assert seen[-1].status == "succeeded"
            assert final.finished_at is not None
            page = await admin.list_products(q=tag)
            assert page.total == 5
        finally:
            await admin.aclose()

    run(scenario())
