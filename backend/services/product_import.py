"""Bulk product import from a CSV file: validated row by row, upserted by sku in batches.

The file is UTF-8 (a BOM is allowed), its first line is exactly `HEADER`, and each
following line is one product. The file is streamed: memory stays bounded whatever
its size. Each batch of valid rows is committed in one transaction, then announced
(`product.created` / `product.updated` on the `products` channel) and the catalog
cache invalidated, exactly like an admin's single-product write.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from marshmallow import ValidationError

from backend import cache
from backend.db import db
from backend.errors import ValidationFailed
from backend.models import Job, Product, User, utcnow
from backend.schemas.catalog import CENT, ProductSchema
from backend.services import job_tracking
from backend.services.access import require_role
from backend.services.products import CACHE_NAMESPACE, announce
from backend.spool import Spooled

HEADER = ["sku", "name", "description", "price", "currency", "stock"]
MAX_ERRORS = 100
MAX_HEADER_BYTES = 64 * 1024
FIELD_SIZE_LIMIT = 1024 * 1024  # characters per field (the csv module's own limit)
MAX_LINE_BYTES = 1024 * 1024  # a physical line longer than this is a row error, never read whole
MAX_STOCK = 2**31 - 1  # the stock column is a 32-bit integer on PostgreSQL
INSERT_CHUNK = 100  # rows per INSERT statement, well under SQLite's bound-parameter limit
COUNT_CHUNK = 1024 * 1024
NOT_CLEANED = frozenset({"description"})  # kept verbatim; every other cell is stripped
PRESERVED = [*(Product._meta.fields[name] for name in HEADER), Product.updated_at]
INSERTED = [*PRESERVED, Product.created_at]  # the order of the values in `_write_batch`
_INTEGER = re.compile(r"[+-]?[0-9]{1,100}")

Progress = Callable[[int, int | None, str], None]
RowErrors = list[tuple[str, str]]
Source = Path | Spooled  # a CSV file here, or an input in the spool (what jobs get)


@dataclass
class ImportResult:
    """What an import did; JSON-able through `dataclasses.asdict`.

    Attributes:
        created: Products created.
        updated: Products updated, including rows repeating an earlier row's sku.
        failed: Rows refused (every one of them).
        errors: The first `MAX_ERRORS` problems as `{"row", "field", "message"}`; `row`
            is the 1-based data row (the header excluded), `field` a column name or "row".
    """

    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class InvalidCsv(ValidationFailed):
    """The file as a whole is unusable: not UTF-8 text, or not our header (422)."""

    slug = "invalid_csv"


class _LineTooLong(Exception):
    """A physical line over `MAX_LINE_BYTES` (already skipped)."""


class _UndecodableRow(Exception):
    """A line of the data that is not UTF-8."""


class _Lines:
    """The physical lines of a binary stream, decoded one by one as strict UTF-8.

    A line longer than `MAX_LINE_BYTES` is skipped in small reads and reported by
    raising `_LineTooLong`; iteration can go on afterwards (unlike a generator's).
    Lines end with LF (or CRLF).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self._stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            self._skip_rest_of_line()
            raise _LineTooLong
        return raw.decode("utf-8")  # UnicodeDecodeError goes up through the csv reader

    def _skip_rest_of_line(self) -> None:
        while True:
            chunk = self._stream.readline(COUNT_CHUNK)
            if not chunk or chunk.endswith(b"\n"):
                return


@dataclass
class _Batch:
    """Valid rows waiting to be written, the last row of each sku winning."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: int = 0

    def add(self, values: dict[str, Any]) -> None:
        if values["sku"] in self.rows:
            self.repeats += 1
        self.rows[values["sku"]] = values

    def __len__(self) -> int:
        return len(self.rows) + self.repeats


def start_import(*, actor: User, input_name: str) -> Job:
    """Check a spooled CSV's header and start importing it in the background (admin).

    `input_name` names the CSV in the spool (`backend.spool.spool`). Raises
    `Forbidden`, or `ValidationFailed` (`invalid_csv`) for a file that is empty,
    not UTF-8 text, or has the wrong columns (or `redis.RedisError`); the input
    is then deleted.
    """
    source = Spooled(input_name)
    try:
        require_role(actor, "admin")
        check_header(source)
        return job_tracking.submit(
            owner=actor, kind="products.import", func="jobs.products.import_products",
            args=(input_name,),
        )  # fmt: skip
    except BaseException:
        source.delete()
        raise


def run_import(*, input_name: str, progress: Progress) -> ImportResult:
    """Import the spooled CSV `input_name` (see `import_products`); delete it once done.

    When the import fails or is stopped, the input stays for a retry
    (`POST /jobs/{id}/retry`) until the spool is purged.
    """
    source = Spooled(input_name)
    result = import_products(source=source, progress=progress)
    source.delete()
    return result


def check_header(source: Source) -> None:
    """Check that `source` is UTF-8 text (BOM or not) whose first line is exactly `HEADER`.

    Column names are compared case-insensitively, surrounding spaces ignored, in order.

    Args:
        source: The CSV file.

    Raises:
        InvalidCsv: The file is empty, not UTF-8 text (binary data, say), its first
            line is longer than 64 KiB, or its columns are missing, unexpected,
            repeated or out of order (the message names them).
    """
    with source.open("rb") as stream:
        _read_header(stream)


def import_products(*, source: Source, progress: Progress, batch_size: int = 500) -> ImportResult:
    """Create or update (by sku) the products listed in the CSV file `source`.

    The header is checked first (see `check_header`); nothing is written when it
    fails. Rows are then streamed and validated with `ProductSchema`: empty cells
    take the schema defaults (description "", currency "USD", stock 0), other cells
    than the description are stripped of surrounding spaces, and text is stored
    verbatim (`=cmd|...` formulas included: it is data, never evaluated). A bad row
    (invalid value, wrong number of columns, malformed quoting, a field over 1 MiB)
    is counted in `failed` and reported in `errors`; the import goes on. A blank
    line is skipped (it still counts as a row). When a sku repeats, the later row
    wins and counts as an update.

    Valid rows are upserted `batch_size` at a time, each batch in one transaction, so
    a batch is committed whole or not at all: an import killed between batches
    leaves the earlier batches committed and can simply be run again. After each
    committed batch `progress(rows_done, total, message)` is called: `rows_done`
    counts data rows read so far, `total` the file's data lines (an upper bound when
    quoted values span lines); the last call, at the end, has `total == rows_done`.

    Args:
        source: The CSV file (UTF-8, first line `HEADER`).
        progress: Called after each batch with rows done, total rows, and a message.
        batch_size: Valid rows per transaction (at least 1).

    Returns:
        The counts and the first `MAX_ERRORS` row errors.

    Raises:
        InvalidCsv: The header is wrong (nothing written), or a line in the middle is
            not UTF-8: the import stops there, batches committed before it stay
            committed and the rows read since the last one are not written; the
            message names the row.
        ValueError: `batch_size` is below 1.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    with source.open("rb") as stream:
        _read_header(stream)
        importer = _Importer(progress=progress, total=_count_rows(source), batch_size=batch_size)
        importer.run(csv.reader(_Lines(stream), strict=True))
    return importer.result


class _Importer:
    """One import run: reads records, collects errors, writes batches, reports progress."""

    def __init__(self, *, progress: Progress, total: int, batch_size: int) -> None:
        self.result = ImportResult()
        self._progress = progress
        self._total = total
        self._batch_size = batch_size
        self._schema = ProductSchema(only=HEADER)
        self._batch = _Batch()
        self._rows_read = 0
        self._rows_committed = 0
        self._reported: tuple[int, int] | None = None

    def run(self, reader: Iterator[list[str]]) -> None:
        try:
            for row, record in _records(reader):
                self._rows_read = row
                if isinstance(record, str):
                    self._fail(row, [("row", record)])
                else:
                    self._take(row, record)
                if len(self._batch) >= self._batch_size:
                    self._flush(self._total)
        except _UndecodableRow as exc:
            raise self._undecodable(exc) from exc
        self._flush(self._rows_read)

    def _take(self, row: int, cells: list[str]) -> None:
        if not cells:
            return  # a blank line
        if len(cells) != len(HEADER):
            self._fail(row, [("row", f"Expected {len(HEADER)} columns, got {len(cells)}.")])
            return
        values, errors = _parse_row(self._schema, cells)
        if errors:
            self._fail(row, errors)
        else:
            self._batch.add(values)

    def _fail(self, row: int, errors: RowErrors) -> None:
        self.result.failed += 1
        room = MAX_ERRORS - len(self.result.errors)
        self.result.errors.extend(
            {"row": row, "field": name, "message": message} for name, message in errors[:room]
        )

    def _flush(self, total: int) -> None:
        if self._batch:
            created, updated = _write_batch(self._batch)
            self.result.created += created
            self.result.updated += updated
            self._batch = _Batch()
        self._rows_committed = self._rows_read
        if self._reported != (self._rows_read, total):
            self._reported = (self._rows_read, total)
            self._progress(self._rows_read, total, self._message())

    def _message(self) -> str:
        done = f"imported {self.result.created + self.result.updated} rows"
        return f"{done}, {self.result.failed} failed" if self.result.failed else done

    def _undecodable(self, exc: _UndecodableRow) -> InvalidCsv:
        row, detail = exc.args
        kept = (
            f"rows 1-{self._rows_committed} were processed and their valid rows committed"
            if self._rows_committed
            else "nothing was committed"
        )
        return InvalidCsv(f"Row {row} is not UTF-8 text ({detail}); the import stopped: {kept}.")


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str] | str]]:
    """Yield `(row, cells)` per CSV record, or `(row, message)` for a malformed one.

    Raises:
        _UndecodableRow: With the row number and the decoding problem.
    """
    row = 0
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise _UndecodableRow(row, f"{exc.reason} at byte {exc.start + 1} of its line") from exc
        except _LineTooLong:
            yield row, f"The line is longer than {MAX_LINE_BYTES:,} bytes."
        except csv.Error as exc:
            yield row, f"Malformed CSV: {exc}."
        else:
            yield row, cells


def _parse_row(schema: ProductSchema, cells: list[str]) -> tuple[dict[str, Any], RowErrors]:
    """Validate one row's cells; return the product's values, or the row's errors."""
    raw = dict(zip(HEADER, cells, strict=True))
    nul = [(name, "Contains a NUL character.") for name, value in raw.items() if "\x00" in value]
    if nul:
        return {}, nul
    data: dict[str, Any] = {
        name: value if name in NOT_CLEANED else value.strip() for name, value in raw.items()
    }
    data = {name: value for name, value in data.items() if value != ""}  # → schema defaults
    if "stock" in data and _INTEGER.fullmatch(data["stock"]):
        data["stock"] = int(data["stock"])  # the schema's Integer is strict: no strings
    try:
        values: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        return {}, _messages(exc)
    if values["stock"] > MAX_STOCK:
        return {}, [("stock", f"Must be at most {MAX_STOCK}.")]
    values["price"] = values["price"].quantize(CENT)
    return values, []


def _messages(exc: ValidationError) -> RowErrors:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return [
        ("row" if name == "_schema" else str(name), _text(found))
        for name, found in messages.items()
    ]


def _text(found: Any) -> str:
    return " ".join(str(item) for item in found) if isinstance(found, list) else str(found)


def _write_batch(batch: _Batch) -> tuple[int, int]:
    """Upsert a batch by sku in one transaction; return (created, updated).

    The events and the cache invalidation go out only once the batch commits.
    """
    skus = list(batch.rows)
    now = utcnow()
    rows = [(*(values[name] for name in HEADER), now, now) for values in batch.rows.values()]
    with db.atomic():
        existing = {p.sku for p in Product.select(Product.sku).where(Product.sku.in_(skus))}
        for start in range(0, len(rows), INSERT_CHUNK):
            # One statement inserts the new skus and updates the others; ON CONFLICT also
            # settles a sku that a concurrent writer created after the query above.
            Product.insert_many(rows[start : start + INSERT_CHUNK], fields=INSERTED).on_conflict(
                conflict_target=[Product.sku], preserve=PRESERVED
            ).execute()
        for product in Product.select().where(Product.sku.in_(skus)).order_by(Product.id):
            event = "product.updated" if product.sku in existing else "product.created"
            announce(product, event, was_visible=product.is_active)
        db.after_commit(lambda: cache.invalidate(CACHE_NAMESPACE))
    created = len(skus) - len(existing)
    return created, len(batch) - created


def _read_header(stream: IO[bytes]) -> None:
    """Read and check the first line of `stream`, leaving it at the first data line."""
    raw = stream.readline(len(codecs.BOM_UTF8) + MAX_HEADER_BYTES + 2)
    if not raw:
        raise InvalidCsv("The file is empty: it needs the header " + ",".join(HEADER) + ".")
    line = raw.removeprefix(codecs.BOM_UTF8).rstrip(b"\r\n")
    if len(line) > MAX_HEADER_BYTES:
        raise InvalidCsv("The first line is longer than 64 KiB: this is not a product CSV.")
    if b"\x00" in line:
        raise InvalidCsv("This is not a text file: upload a UTF-8 CSV.")
    if b"\r" in line:
        raise InvalidCsv("Lines must end with LF or CRLF, not CR alone: export the CSV again.")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidCsv("The file is not UTF-8 text: export the CSV as UTF-8.") from exc
    _check_columns(text)


def _check_columns(text: str) -> None:
    try:
        columns = [name.strip().lower() for name in next(csv.reader([text], strict=True), [])]
    except csv.Error as exc:
        raise InvalidCsv(f"The header is not valid CSV: {exc}.") from exc
    if columns == HEADER:
        return
    missing = [name for name in HEADER if name not in columns]
    unexpected = [name for name in columns if name not in HEADER]
    problems = [
        f"{label} {', '.join(repr(name) for name in names)}"
        for label, names in (("missing columns:", missing), ("unexpected columns:", unexpected))
        if names
    ] or ["the columns are repeated or out of order"]
    raise InvalidCsv(
        f"The first line must be the header {','.join(HEADER)}; {'; '.join(problems)}.",
        errors={"missing": missing, "unexpected": unexpected},
    )


def _count_rows(source: Source) -> int:
    """Count the data lines (header excluded) by counting newlines in binary chunks."""
    lines, last = 0, b"\n"
    with source.open("rb") as stream:
        while chunk := stream.read(COUNT_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1  # a last line without a newline
    return max(lines - 1, 0)


__all__ = [
    "HEADER",
    "MAX_ERRORS",
    "ImportResult",
    "InvalidCsv",
    "check_header",
    "import_products",
    "run_import",
    "start_import",
]
