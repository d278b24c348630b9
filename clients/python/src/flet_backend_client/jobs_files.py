"""Background jobs and files: the part of `AsyncClient` that deals with long work and bytes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote, urlencode

from flet_backend_client.errors import ExpiredError, FletBackendError, error_from_response
from flet_backend_client.events import EventStream
from flet_backend_client.models import FileInfo, Job, Page, UploadStatus, UploadUrl
from flet_backend_client.session import Session
from flet_backend_client.uploads import (
    MultipartFile,
    ProgressCallback,
    Source,
    raw_body,
    source_size,
)

JobCallback = Callable[[Job], None]


class JobsAndFiles:
    """Jobs (`/jobs`, imports, exports), files (`/files`) and live events."""

    _session: Session
    job_poll_interval: float = 5.0

    def events(
        self,
        topics: Sequence[str] = (),
        last_event_id: str | None = None,
        heartbeat_timeout: float = 45.0,
        max_backoff: float = 30.0,
    ) -> EventStream:
        """Subscribe to live events (nothing is sent until iteration starts).

        Args:
            topics: Extra channels (`products`; `admin` for admins). The user's
                own channel is always included.
            last_event_id: Resume after this event (a `stream.reset` comes first
                when it is too old or unknown).
            heartbeat_timeout: Seconds without any byte before reconnecting.
            max_backoff: Cap of the reconnect delay in seconds.

        Returns:
            An `EventStream`: `async with client.events() as s: async for e in s:`.
        """
        return EventStream(self._session, topics, last_event_id, heartbeat_timeout, max_backoff)

    async def get_job(self, job_id: str) -> Job:
        """Return a job's status, progress, result or error."""
        return Job.from_json(await self._session.json("GET", f"/jobs/{quote(job_id)}", retries=2))

    async def list_jobs(self, page: int = 1, page_size: int = 20) -> Page[Job]:
        """List the caller's jobs, newest first (admins: everyone's)."""
        params = {"page": page, "page_size": page_size}
        response = await self._session.request("GET", "/jobs", params=params, retries=2)
        items = [Job.from_json(item) for item in response.json()]
        return Page.from_header(items, response.headers.get("X-Pagination"), page, page_size)

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a job (a running one stops soon after); 409 `job_finished` if it ended."""
        return Job.from_json(await self._session.json("POST", f"/jobs/{quote(job_id)}/cancel"))

    async def retry_job(self, job_id: str) -> Job:
        """Run a failed or cancelled job again, as a new job (owner or admin); return it, queued.

        Imports (on their kept CSV), order exports and image renditions can be
        retried, within a day (`JOBS_RETRY_WINDOW_HOURS`) of the job's end; a job
        is retried once (its retry may be retried in turn). Follow the new job
        with `wait_for_job`.

        Raises:
            ConflictError: `job_not_retryable`: the job did not fail and was not
                cancelled, its kind is not retried, it was retried already, it
                ended too long ago, or its input is no longer kept.
            NotFoundError: No such job, or someone else's.
        """
        return Job.from_json(await self._session.json("POST", f"/jobs/{quote(job_id)}/retry"))

    async def wait_for_job(
        self, job_id: str, on_progress: JobCallback | None = None, timeout: float = 300.0
    ) -> Job:
        """Wait until a job ends, following its `job.*` events (and polling as a fallback).

        Args:
            job_id: The job to follow.
            on_progress: Called with each state seen, the final one included.
            timeout: Seconds to wait in all.

        Returns:
            The terminal job (succeeded, failed or cancelled).

        Raises:
            TimeoutError: The job did not end within `timeout`.
        """
        async with asyncio.timeout(timeout):
            return await self._follow_job(job_id, on_progress)

    async def _follow_job(self, job_id: str, on_progress: JobCallback | None) -> Job:
        updates: asyncio.Queue[Job] = asyncio.Queue()
        stream = self.events()
        reader = asyncio.create_task(_pump_job_events(stream, job_id, updates))
        try:
            job = await self.get_job(job_id)
            while True:
                if on_progress is not None:
                    on_progress(job)
                if job.is_terminal:
                    break
                poll = self.job_poll_interval if not reader.done() else 1.0
                try:
                    job = await asyncio.wait_for(updates.get(), poll)
                except TimeoutError:
                    job = await self.get_job(job_id)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, FletBackendError):
                await reader
            await stream.aclose()
        return await self.get_job(job_id)  # the full record, with timestamps

    async def import_products(self, csv: Source) -> Job:
        """Start a catalog import from a CSV (admin); returns the queued job.

        Columns `sku,name,description,price,currency,stock` with a header row.
        """
        upload = MultipartFile.build(csv, content_type="text/csv", default_name="products.csv")
        response = await self._session.request(
            "POST", "/products/import", headers=upload.headers, body=upload.body
        )
        return Job.from_json(response.json())

    async def export_orders(self) -> Job:
        """Start a CSV export of the caller's orders (admins: all); the result holds `file_id`."""
        return Job.from_json(await self._session.json("POST", "/orders/export"))

    async def upload_file(
        self,
        source: Source,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Upload a file (streamed in chunks), calling `on_progress(sent, total)` as it goes.

        Args:
            source: A path, or the bytes themselves.
            filename: The name to send (default: the path's name).
            content_type: The type to send (default: guessed from the name).
            on_progress: Called after each chunk with bytes sent and the body's size.

        Returns:
            The stored file's metadata.
        """
        upload = MultipartFile.build(source, filename=filename, content_type=content_type)
        response = await self._session.request(
            "POST", "/files", headers=upload.headers, body=lambda: upload.body(on_progress)
        )
        return FileInfo.from_json(response.json(), self._session.base_url)

    async def upload_url(
        self,
        filename: str,
        *,
        content_type: str | None = None,
        size: int | None = None,
        purpose: str | None = None,
    ) -> UploadUrl:
        """Ask for a signed, single-use URL to PUT one file to (Flet's `FilePicker.upload`).

        The URL needs no token and no headers: hand it to
        `ft.FilePickerUploadFile(name, upload_url=url.upload_url, method="PUT")`.
        It expires at `expires_at` and takes at most `max_bytes`.
        """
        payload: dict[str, object] = {"filename": filename}
        optional = {"content_type": content_type, "size": size, "purpose": purpose}
        payload.update({k: v for k, v in optional.items() if v is not None})
        body = await self._session.json("POST", "/files/upload-urls", json=payload)
        return UploadUrl.from_json(body)

    async def import_upload_url(self) -> UploadUrl:
        """Ask for an upload URL whose PUT (a CSV) starts a catalog import (admin)."""
        return UploadUrl.from_json(await self._session.json("POST", "/products/import/upload-url"))

    async def upload_status(self, target: UploadUrl | str) -> UploadStatus:
        """What became of an upload URL (`pending`, or `completed` with its file or job)."""
        upload_id = target.upload_id if isinstance(target, UploadUrl) else target
        path = f"/files/upload-urls/{quote(upload_id)}"
        body = await self._session.json("GET", path, retries=2)
        return UploadStatus.from_json(body, self._session.base_url)

    async def wait_for_upload(
        self, target: UploadUrl | str, timeout: float = 30.0, interval: float = 0.5
    ) -> UploadStatus:
        """Wait until an upload URL's PUT has completed (after `FilePicker.upload` is done).

        Raises:
            ExpiredError: The URL expired before anything was stored.
            TimeoutError: Still pending after `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                status = await self.upload_status(target)
                if status.status == "completed":
                    return status
                if status.status == "expired":
                    raise ExpiredError(410, "expired", "The upload URL expired unused.")
                await asyncio.sleep(interval)

    async def put_to_upload_url(
        self, target: UploadUrl, source: Source, on_progress: ProgressCallback | None = None
    ) -> dict[str, object]:
        """PUT `source` to an upload URL, raw and without credentials, as Flet does.

        Returns the server's JSON: the stored file, or (for an import URL) the job.
        """
        response = await self._session.http.request(
            target.method, target.upload_url, content=raw_body(source, on_progress),
            headers={"Content-Length": str(source_size(source))},
        )  # fmt: skip
        if response.status_code >= 400:
            raise error_from_response(response)
        body = response.json()
        return body if isinstance(body, dict) else {}

    async def upload_file_via_url(
        self,
        source: Source,
        *,
        filename: str | None = None,
        purpose: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> FileInfo:
        """Upload a file through an upload URL (no multipart): ask for one, then PUT the bytes."""
        name = filename or (Path(source).name if not isinstance(source, bytes) else "upload.bin")
        target = await self.upload_url(name, size=source_size(source), purpose=purpose)
        body = await self.put_to_upload_url(target, source, on_progress)
        return FileInfo.from_json(body, self._session.base_url)

    async def import_products_via_url(
        self, csv: Source, on_progress: ProgressCallback | None = None
    ) -> Job:
        """Start a catalog import (admin) by PUTting the CSV to an import upload URL."""
        target = await self.import_upload_url()
        return Job.from_json(await self.put_to_upload_url(target, csv, on_progress))

    async def get_file(self, file_id: int) -> FileInfo:
        """Return a file's metadata."""
        data = await self._session.json("GET", f"/files/{file_id}", retries=2)
        return FileInfo.from_json(data, self._session.base_url)

    def file_url(self, file_id: int, variant: str | None = None) -> str:
        """The address of a file's content (e.g. for an image widget; public for product images)."""
        url = f"{self._session.api_url}/files/{file_id}/content"
        return f"{url}?{urlencode({'variant': variant})}" if variant else url

    async def download_file(self, file_id: int, variant: str | None = None) -> bytes:
        """Download a file's content (or one of an image's variants)."""
        response = await self._session.request(
            "GET", f"/files/{file_id}/content", params={"variant": variant}, retries=2
        )
        return response.content

    async def delete_file(self, file_id: int) -> None:
        """Delete a file (owner or admin)."""
        await self._session.request("DELETE", f"/files/{file_id}")


async def _pump_job_events(stream: EventStream, job_id: str, updates: asyncio.Queue[Job]) -> None:
    """Put every `job.*` event of `job_id` on `updates` (ends quietly if the stream fails)."""
    with contextlib.suppress(FletBackendError):
        async for event in stream:
            if event.type.startswith("job.") and str(event.data.get("id")) == job_id:
                updates.put_nowait(Job.from_json(event.data))
