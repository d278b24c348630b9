"""Uploads the way Flet does them: `FilePicker.upload` PUTs the picked file to an upload URL.

The browser (or the device) sends the bytes straight to the backend, with no token and no
multipart, and Flet reports progress through the picker's `on_upload`; nothing is read into
this process's memory. Flet does not pass on the server's answer, so the new file (or, for a
CSV import, the job) is then read with `wait_for_upload`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import flet as ft
from flet_backend_client import AsyncClient, UploadStatus, UploadUrl

UPLOAD_TIMEOUT = 600.0  # seconds for the bytes to arrive (a large file on a slow link)

Progress = Callable[[float], None]


class UploadFailed(Exception):
    """The picker reported an error (the server refused the file, or the network failed)."""


@dataclass
class _Transfer:
    on_progress: Progress | None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


class PickerUploads:
    """Sends picked files to upload URLs through one `FilePicker` and awaits each one."""

    def __init__(self, picker: ft.FilePicker, client: AsyncClient) -> None:
        self.picker = picker
        self.client = client
        self._transfers: dict[str, _Transfer] = {}
        picker.on_upload = self._on_upload

    async def send(
        self, picked: ft.FilePickerFile, target: UploadUrl, on_progress: Progress | None = None
    ) -> UploadStatus:
        """PUT `picked` to `target`, reporting progress (0.0 to 1.0); return what was stored.

        Raises:
            UploadFailed: The transfer failed (the picker's error, e.g. a 413 or 415).
            TimeoutError: The bytes or the server's record did not arrive in time.
        """
        transfer = _Transfer(on_progress)
        self._transfers[picked.name] = transfer
        try:
            await self.picker.upload(
                [
                    ft.FilePickerUploadFile(
                        upload_url=target.upload_url,
                        method=target.method,
                        id=picked.id,
                        name=picked.name,
                    )
                ]  # fmt: skip
            )
            await asyncio.wait_for(transfer.done.wait(), UPLOAD_TIMEOUT)
        finally:
            self._transfers.pop(picked.name, None)
        if transfer.error:
            raise UploadFailed(transfer.error)
        return await self.client.wait_for_upload(target)

    def _on_upload(self, event: ft.FilePickerUploadEvent) -> None:
        transfer = self._transfers.get(event.file_name)
        if transfer is None:
            return
        if event.error:
            transfer.error = event.error
            transfer.done.set()
            return
        if transfer.on_progress is not None and event.progress is not None:
            transfer.on_progress(event.progress)
        if event.progress is not None and event.progress >= 1.0:
            transfer.done.set()
