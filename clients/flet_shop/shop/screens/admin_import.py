"""Admin: import products from a CSV file, with live progress and the row errors.

A chosen file goes to an import upload URL through Flet's `FilePicker.upload` (the bytes
never pass through this process); pasted text is posted as before.
"""

from __future__ import annotations

import flet as ft
from flet_backend_client import Job

from shop.screens.base import Screen, heading
from shop.texts import error_message, import_summary

CSV_HEADER = "sku,name,description,price,currency,stock"


def percent_of(job: Job) -> int:
    """The job's progress as a whole percentage (100 once it succeeded)."""
    if job.status == "succeeded":
        return 100
    if job.progress.percent is not None:
        return int(job.progress.percent)
    total = job.progress.total
    return int(100 * job.progress.done / total) if total else 0


class ImportScreen(Screen):
    """Pick a CSV file (or paste its text) and import it."""

    title = "Import products"

    def build(self) -> ft.Control:
        """Return the picker, the text box, the progress bar and the result."""
        self.picked: ft.FilePickerFile | None = None
        self.picked_name = ft.Text("No file chosen: paste CSV text below or choose a file.")
        self.csv = ft.TextField(
            label="CSV content", multiline=True, min_lines=6, max_lines=12, hint_text=CSV_HEADER
        )
        self.start = ft.Button("Start import", icon=ft.Icons.UPLOAD_FILE, on_click=self.run_import)
        self.bar = ft.ProgressBar(value=0, visible=False, width=480)
        self.percent = ft.Text()
        self.status = ft.Text()
        self.result = ft.Column(spacing=2)
        return ft.Column(
            [heading("Import products"), ft.Text(f"Columns: {CSV_HEADER}"),
             ft.Row([ft.Button("Choose CSV file", icon=ft.Icons.FOLDER_OPEN, on_click=self.choose),
                     self.picked_name]),
             self.csv, self.start, self.bar, self.percent, self.status, self.result],
            spacing=12, scroll=ft.ScrollMode.AUTO, expand=True,
        )  # fmt: skip

    async def choose(self, _event: ft.Event[ft.Button]) -> None:
        """Let the user pick a .csv file (sent by the picker itself: nothing is read here)."""
        files = await self.shop.file_picker.pick_files(
            dialog_title="Choose a CSV file", allowed_extensions=["csv"],
            file_type=ft.FilePickerFileType.CUSTOM,
        )  # fmt: skip
        if not files:
            return
        self.picked = files[0]
        self.picked_name.value = f"Chosen: {self.picked.name} ({self.picked.size} bytes)"
        self.shop.page.update()

    async def _start(self) -> Job | None:
        """Start the import from the pasted text, else from the chosen file; None: neither."""
        text = (self.csv.value or "").strip()
        if text:
            return await self.shop.client.import_products((text + "\n").encode())
        if self.picked is None:
            return None
        target = await self.shop.client.import_upload_url()
        sent = await self.shop.uploads.send(self.picked, target, self.show_upload)
        return sent.job

    async def run_import(self, _event: ft.Event[ft.Button]) -> None:
        """Upload the CSV, then follow the job to its end."""
        if not (self.csv.value or "").strip() and self.picked is None:
            self.shop.notify("Choose a CSV file or paste its content first.", error=True)
            return
        self.start.disabled = True
        self.result.controls = []
        self.show_progress(None)
        try:
            job = await self._start()
            if job is None:
                raise RuntimeError("the upload started no import")
            job = await self.shop.client.wait_for_job(job.id, on_progress=self.show_progress)
        except Exception as exc:  # ApiError (e.g. 422 invalid_csv), or the server is unreachable
            self.status.value = f"Import failed: {error_message(exc)}"
        else:
            self.show_progress(job)
            self.show_result(job)
        finally:
            self.start.disabled = False
        self.shop.page.update()

    def show_upload(self, fraction: float) -> None:
        """Move the bar while the picker sends the file."""
        self.bar.visible = True
        self.bar.value = fraction
        self.percent.value = f"Uploading {int(fraction * 100)}%"
        self.status.value = "Uploading…"
        self.shop.page.update()

    def show_progress(self, job: Job | None) -> None:
        """Move the bar and the percent label (called for every state the job reports)."""
        percent = percent_of(job) if job is not None else 0
        self.bar.visible = True
        self.bar.value = percent / 100
        self.percent.value = f"Import {percent}%"
        self.status.value = f"Job {job.status}: {job.progress.message}" if job else "Uploading…"
        self.shop.page.update()

    def show_result(self, job: Job) -> None:
        """List what the import did and each refused row."""
        if job.status != "succeeded":
            self.status.value = f"Import {job.status}: {job.error or ''}".strip()
            return
        lines = import_summary(job.result)
        self.status.value = "Import finished."
        self.result.controls = [ft.Text(line) for line in lines]
