"""`Client`: the same API, blocking, over a private event loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from flet_backend_client.client import AsyncClient, Price
from flet_backend_client.events import EventStream
from flet_backend_client.models import (
    AuditEvent,
    Event,
    FileInfo,
    Job,
    Notification,
    Order,
    Page,
    Payment,
    Product,
    UploadUrl,
    User,
)
from flet_backend_client.tokens import Tokens, TokenStore
from flet_backend_client.uploads import ProgressCallback, Source

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="flet-backend-client", daemon=True
        )
        self.thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        async def wrapper() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class SyncEventStream:
    """A blocking view of an `EventStream`: `with client.events() as s: for e in s:`."""

    def __init__(self, loop: _Loop, stream: EventStream) -> None:
        self._loop = loop
        self._stream = stream

    @property
    def last_event_id(self) -> str | None:
        """The cursor of the last event seen."""
        return self._stream.last_event_id

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        try:
            return self._loop.run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Close the connection."""
        self._loop.run(self._stream.aclose())


class Client:
    """Blocking client with the methods of `AsyncClient` (arguments as there).

    Each call runs on a private event loop in a background thread, so it can
    be used from plain threads; call `close()` (or use `with`) when done.
    """

    def __init__(
        self, base_url: str, token_store: TokenStore | None = None, timeout: float = 10.0
    ) -> None:
        self._loop = _Loop()
        self.aio = AsyncClient(base_url, token_store, timeout)

    def _run(self, factory: Callable[[], Awaitable[T]]) -> T:
        return self._loop.run(factory())

    def __enter__(self) -> Client:
        self.restore()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the background loop."""
        self._run(self.aio.aclose)
        self._loop.stop()

    @property
    def is_authenticated(self) -> bool:
        """Whether the client holds tokens."""
        return self.aio.is_authenticated

    @property
    def tokens(self) -> Tokens | None:
        """The current token pair, if signed in."""
        return self.aio.tokens

    def restore(self) -> bool:
        """Load tokens from the store; return whether signed in."""
        return self._run(self.aio.restore)

    def register(self, email: str, password: str, name: str | None = None) -> User:
        """Create an account."""
        return self._run(lambda: self.aio.register(email, password, name))

    def login(self, email: str, password: str, device_name: str | None = None) -> User:
        """Sign in."""
        return self._run(lambda: self.aio.login(email, password, device_name))

    def logout(self, everywhere: bool = False) -> None:
        """Sign out."""
        self._run(lambda: self.aio.logout(everywhere))

    def login_with_provider(
        self, provider: str, access_token: str, device_name: str | None = None
    ) -> User:
        """Sign in with a provider's access token (see `AsyncClient.login_with_provider`)."""
        return self._run(lambda: self.aio.login_with_provider(provider, access_token, device_name))

    def sign_in_with_provider(self, provider: str, open_url: Callable[[str], Any]) -> User:
        """Run a backend-run provider sign-in (see `AsyncClient.sign_in_with_provider`)."""
        return self._run(lambda: self.aio.sign_in_with_provider(provider, open_url))

    def upload_url(self, filename: str, **options: Any) -> UploadUrl:
        """Ask for a single-use upload URL (see `AsyncClient.upload_url`)."""
        return self._run(lambda: self.aio.upload_url(filename, **options))

    def upload_file_via_url(self, source: Source, **options: Any) -> FileInfo:
        """Upload a file through an upload URL (see `AsyncClient.upload_file_via_url`)."""
        return self._run(lambda: self.aio.upload_file_via_url(source, **options))

    def me(self) -> User:
        """Return the signed-in user."""
        return self._run(self.aio.me)

    def list_products(self, **filters: Any) -> Page[Product]:
        """List products (filters as `AsyncClient.list_products`)."""
        return self._run(lambda: self.aio.list_products(**filters))

    def iter_products(
        self,
        q: str | None = None,
        page_size: int = 100,
        in_stock: bool | None = None,
        sort: str | None = None,
        min_price: Price | None = None,
        max_price: Price | None = None,
    ) -> Iterator[Product]:
        """Yield every matching product, page by page."""
        page = 1
        while True:
            result = self.list_products(
                q=q, page=page, page_size=page_size, in_stock=in_stock, sort=sort,
                min_price=min_price, max_price=max_price,
            )  # fmt: skip
            yield from result.items
            if not result.items or page >= result.total_pages:
                return
            page += 1

    def get_product(self, product_id: int) -> Product:
        """Return one product."""
        return self._run(lambda: self.aio.get_product(product_id))

    def create_product(self, **fields: Any) -> Product:
        """Add a product (admin)."""
        return self._run(lambda: self.aio.create_product(**fields))

    def update_product(self, product_id: int, **changes: Any) -> Product:
        """Change a product (admin)."""
        return self._run(lambda: self.aio.update_product(product_id, **changes))

    def place_order(
        self,
        items: Sequence[tuple[int, int]],
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Order:
        """Place an order."""
        return self._run(lambda: self.aio.place_order(items, note, idempotency_key))

    def list_orders(self, page: int = 1, page_size: int = 20) -> Page[Order]:
        """List orders."""
        return self._run(lambda: self.aio.list_orders(page, page_size))

    def get_order(self, order_id: int) -> Order:
        """Return one order."""
        return self._run(lambda: self.aio.get_order(order_id))

    def cancel_order(self, order_id: int) -> Order:
        """Cancel an order."""
        return self._run(lambda: self.aio.cancel_order(order_id))

    def pay(self, order_id: int) -> Payment:
        """Start paying a pending order (see `AsyncClient.pay`)."""
        return self._run(lambda: self.aio.pay(order_id))

    def set_order_status(self, order_id: int, status: str) -> Order:
        """Move an order to its next status (admin)."""
        return self._run(lambda: self.aio.set_order_status(order_id, status))

    def list_notifications(
        self, unread: bool | None = None, page: int = 1, page_size: int = 20
    ) -> Page[Notification]:
        """List notifications."""
        return self._run(lambda: self.aio.list_notifications(unread, page, page_size))

    def mark_notification_read(self, notification_id: int) -> Notification:
        """Mark one notification read."""
        return self._run(lambda: self.aio.mark_notification_read(notification_id))

    def mark_all_notifications_read(self) -> int:
        """Mark every notification read."""
        return self._run(self.aio.mark_all_notifications_read)

    def upload_file(
        self,
        source: Source,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Upload a file (`on_progress` is called on the background thread)."""
        return self._run(
            lambda: self.aio.upload_file(
                source, filename=filename, content_type=content_type, on_progress=on_progress
            )
        )

    def file_url(self, file_id: int, variant: str | None = None) -> str:
        """The address of a file's content."""
        return self.aio.file_url(file_id, variant)

    def download_file(self, file_id: int, variant: str | None = None) -> bytes:
        """Download a file's content."""
        return self._run(lambda: self.aio.download_file(file_id, variant))

    def get_file(self, file_id: int) -> FileInfo:
        """Return a file's metadata."""
        return self._run(lambda: self.aio.get_file(file_id))

    def import_products(self, csv: Source) -> Job:
        """Start a catalog import (admin)."""
        return self._run(lambda: self.aio.import_products(csv))

    def export_orders(self) -> Job:
        """Start an orders export."""
        return self._run(self.aio.export_orders)

    def get_job(self, job_id: str) -> Job:
        """Return a job."""
        return self._run(lambda: self.aio.get_job(job_id))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a job."""
        return self._run(lambda: self.aio.cancel_job(job_id))

    def retry_job(self, job_id: str) -> Job:
        """Run a failed or cancelled job again as a new job (see `AsyncClient.retry_job`)."""
        return self._run(lambda: self.aio.retry_job(job_id))

    def list_audit_events(self, **filters: Any) -> Page[AuditEvent]:
        """List the audit trail (admin; filters as `AsyncClient.list_audit_events`)."""
        return self._run(lambda: self.aio.list_audit_events(**filters))

    def iter_audit_events(self, page_size: int = 100, **filters: Any) -> Iterator[AuditEvent]:
        """Yield every matching audit entry, newest first, page by page (admin)."""
        page = 1
        oldest: int | None = None
        while True:
            result = self.list_audit_events(page=page, page_size=page_size, **filters)
            for event in result.items:
                if oldest is None or event.id < oldest:  # skip those pushed down by new ones
                    oldest = event.id
                    yield event
            if not result.items or page >= result.total_pages:
                return
            page += 1

    def jobs_dashboard_link(self) -> str:
        """Return a one-use link to the jobs dashboard (see `AsyncClient.jobs_dashboard_link`)."""
        return self._run(self.aio.jobs_dashboard_link)

    def wait_for_job(
        self,
        job_id: str,
        on_progress: Callable[[Job], None] | None = None,
        timeout: float = 300.0,
    ) -> Job:
        """Wait until a job ends (`on_progress` is called on the background thread)."""
        return self._run(lambda: self.aio.wait_for_job(job_id, on_progress, timeout))

    def events(
        self,
        topics: Sequence[str] = (),
        last_event_id: str | None = None,
        heartbeat_timeout: float = 45.0,
    ) -> SyncEventStream:
        """Subscribe to live events (a blocking iterator)."""
        return SyncEventStream(
            self._loop, self.aio.events(topics, last_event_id, heartbeat_timeout)
        )
