"""Product CSV import: validation, upsert by sku in batches, events, progress, limits."""

from __future__ import annotations

import codecs
import json
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from peewee import DatabaseError, PostgresqlDatabase

from backend.db import db
from backend.models import Product
from backend.services.product_import import (
    HEADER,
    MAX_ERRORS,
    ImportResult,
    InvalidCsv,
    check_header,
    import_products,
)
from tests.support.catalog import make_product
from tests.support.helpers import stream_events

HEADER_LINE = ",".join(HEADER)
ProgressCalls = list[tuple[int, int | None, str]]


def write_csv(tmp_path: Path, *rows: str, bom: bool = False, newline: str = "\n") -> Path:
    path = tmp_path / "products.csv"
    text = newline.join([HEADER_LINE, *rows]) + newline
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode())
    return path


def run_import(path: Path, *, batch_size: int = 500) -> tuple[ImportResult, ProgressCalls]:
    calls: ProgressCalls = []
    result = import_products(
        source=path, progress=lambda *call: calls.append(call), batch_size=batch_size
    )
    return result, calls


def skus() -> list[str]:
    return [p.sku for p in Product.select().order_by(Product.sku)]


@pytest.mark.parametrize(("bom", "newline"), [(False, "\n"), (True, "\r\n")])
def test_imports_new_products_with_or_without_bom(
    app: Flask, tmp_path: Path, bom: bool, newline: str
) -> None:
    path = write_csv(
        tmp_path,
        'TEA-1,Green tea,Sencha; "loose" leaf,4.50,EUR,12',
        'MUG-1,Mug,"Big, blue",8,,',
        "KET-1,Kettle,,39.9,USD,0",
        bom=bom,
        newline=newline,
    )
    result, calls = run_import(path)
    assert result == ImportResult(created=3, updated=0, failed=0, errors=[])
    assert json.loads(json.dumps(asdict(result))) == asdict(result)
    assert calls == [(3, 3, "imported 3 rows")]
    tea = Product.get(Product.sku == "TEA-1")
    assert (tea.name, tea.description, tea.price, tea.currency, tea.stock, tea.is_active) == (
        "Green tea", 'Sencha; "loose" leaf', Decimal("4.50"), "EUR", 12, True,
    )  # fmt: skip
    mug = Product.get(Product.sku == "MUG-1")
    assert (mug.description, mug.price, mug.currency, mug.stock) == (
        "Big, blue", Decimal("8.00"), "USD", 0,
    )  # fmt: skip
    assert Product.get(Product.sku == "KET-1").description == ""


def test_header_is_case_insensitive_and_ignores_surrounding_spaces(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "products.csv"
    path.write_text(" SKU , Name,Description ,PRICE,currency,Stock\r\nA,Apple,,1.00,USD,1\r\n")
    check_header(path)
    assert run_import(path)[0].created == 1


def test_updates_existing_products_by_sku(app: Flask, tmp_path: Path) -> None:
    old = make_product("A", name="Apple", price="1.00", stock=1, active=False, image_file_id=7)
    path = write_csv(tmp_path, "A,Apple pie,Warm,3.25,EUR,9", "B,Banana,,0.50,USD,4")
    result, _ = run_import(path)
    assert (result.created, result.updated, result.failed) == (1, 1, 0)
    apple = Product.get(Product.sku == "A")
    assert apple.id == old.id
    assert (apple.name, apple.description, apple.price, apple.currency, apple.stock) == (
        "Apple pie", "Warm", Decimal("3.25"), "EUR", 9,
    )  # fmt: skip
    # Columns the file does not have are left alone; the update is stamped.
    assert (apple.is_active, apple.image_file_id) == (False, 7)
    assert apple.created_at == old.created_at
    assert apple.updated_at > old.updated_at
    assert skus() == ["A", "B"]


def test_events_are_published_for_created_and_updated_products(app: Flask, tmp_path: Path) -> None:
    existing = make_product("A")
    run_import(write_csv(tmp_path, "A,Apple,,2.00,USD,5", "B,Banana,,0.50,USD,4"))
    events = stream_events("products")
    assert [(kind, data["sku"]) for kind, data in events] == [
        ("product.updated", "A"), ("product.created", "B"),
    ]  # fmt: skip
    updated, created = events[0][1], events[1][1]
    assert updated["id"] == existing.id
    assert (updated["price"], updated["stock"]) == ("2.00", 5)
    assert created["id"] == Product.get(Product.sku == "B").id
    assert created["price"] == "0.50"


def test_import_invalidates_the_catalog_cache(client: FlaskClient, tmp_path: Path) -> None:
    make_product("A", name="Apple")
    assert [p["name"] for p in client.get("/api/v1/products").get_json()] == ["Apple"]
    run_import(write_csv(tmp_path, "A,Apricot,,1.00,USD,1"))
    assert [p["name"] for p in client.get("/api/v1/products").get_json()] == ["Apricot"]


def test_progress_is_reported_after_each_committed_batch(app: Flask, tmp_path: Path) -> None:
    path = write_csv(tmp_path, *(f"S{i},Product {i},,1.00,USD,1" for i in range(1, 6)))
    committed: list[int] = []
    calls: ProgressCalls = []

    def progress(done: int, total: int | None, message: str) -> None:
        calls.append((done, total, message))
        committed.append(Product.select().count())

    result = import_products(source=path, progress=progress, batch_size=2)
    assert result.created == 5
    assert calls == [
        (2, 5, "imported 2 rows"), (4, 5, "imported 4 rows"), (5, 5, "imported 5 rows"),
    ]  # fmt: skip
    assert committed == [2, 4, 5]
    assert len(stream_events("products")) == 5


class Cancelled(Exception):
    """What a cancelled job sees between batches."""


def test_a_stop_between_batches_keeps_whole_batches_only(app: Flask, tmp_path: Path) -> None:
    path = write_csv(tmp_path, *(f"S{i},Product {i},,1.00,USD,1" for i in range(1, 6)))

    def cancel(done: int, total: int | None, message: str) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        import_products(source=path, progress=cancel, batch_size=3)
    assert skus() == ["S1", "S2", "S3"]
    assert len(stream_events("products")) == 3


@pytest.fixture
def refuse_sku() -> Iterator[Callable[[str], None]]:
    """Make the database itself refuse to insert one sku (a trigger), as a failure mid-batch."""
    postgres = isinstance(db.obj, PostgresqlDatabase)

    def install(sku: str) -> None:
        if postgres:
            db.execute_sql(
                "CREATE FUNCTION refuse_sku() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.sku = '{sku}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; "
                "END $$ LANGUAGE plpgsql"
            )
            db.execute_sql(
                "CREATE TRIGGER refuse_sku BEFORE INSERT ON product "
                "FOR EACH ROW EXECUTE FUNCTION refuse_sku()"
            )
        else:
            db.execute_sql(
                "CREATE TRIGGER refuse_sku BEFORE INSERT ON product "
                f"WHEN NEW.sku = '{sku}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )

    yield install
    if postgres:  # the session's PostgreSQL database outlives this test
        db.execute_sql("DROP TRIGGER IF EXISTS refuse_sku ON product")
        db.execute_sql("DROP FUNCTION IF EXISTS refuse_sku()")


def test_a_batch_failing_midway_is_rolled_back_whole(
    app: Flask, tmp_path: Path, refuse_sku: Callable[[str], None]
) -> None:
    # 150 rows a batch, written in INSERT statements of 100: the second batch fails in its
    # second statement, after its first one succeeded, and none of it stays.
    path = write_csv(tmp_path, *(f"S{i:03d},Product {i},,1.00,USD,1" for i in range(1, 301)))
    refuse_sku("S280")
    calls: ProgressCalls = []
    with pytest.raises(DatabaseError, match="refused"):
        import_products(source=path, progress=lambda *call: calls.append(call), batch_size=150)
    assert Product.select().count() == 150
    assert skus()[-1] == "S150"
    assert len(stream_events("products")) == 150
    assert calls == [(150, 300, "imported 150 rows")]


STOCK_RANGE = "Must be greater than or equal to 0 and less than or equal to 2147483647."


def test_bad_rows_are_reported_and_valid_rows_still_imported(app: Flask, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "OK-1,Fine,,1.00,USD,1",
        "P-3,Three decimals,,1.999,USD,1",
        "P-NEG,Negative,,-1.00,USD,1",
        "C-1,Lower currency,,1.00,usd,1",
        ",No sku,,1.00,USD,1",
        "S-1,Fractional stock,,1.00,USD,1.5",
        "S-2,Word stock,,1.00,USD,ten",
        "S-3,Negative stock,,1.00,USD,-2",
        "COLS,Too few,1.00,USD,1",
        "COLS2,Too many,,1.00,USD,1,extra",
        '"Q"x,Bad quoting,,1.00,USD,1',
        "MANY,,,abc,EURO,1",
        "OK-2,Also fine,,2,GBP,",
    )
    result, calls = run_import(path)
    assert (result.created, result.updated, result.failed) == (2, 0, 11)
    assert result.errors == [
        {"row": 2, "field": "price", "message": "At most two decimal places."},
        {"row": 3, "field": "price", "message": "Must be greater than or equal to 0 and less "
         "than or equal to 9999999999.99."},
        {"row": 4, "field": "currency", "message": "Use a three-letter ISO 4217 code, e.g. USD."},
        {"row": 5, "field": "sku", "message": "Missing data for required field."},
        {"row": 6, "field": "stock", "message": "Not a valid integer."},
        {"row": 7, "field": "stock", "message": "Not a valid integer."},
        {"row": 8, "field": "stock", "message": STOCK_RANGE},
        {"row": 9, "field": "row", "message": "Expected 6 columns, got 5."},
        {"row": 10, "field": "row", "message": "Expected 6 columns, got 7."},
        {"row": 11, "field": "row", "message": "Malformed CSV: ',' expected after '\"'."},
        {"row": 12, "field": "name", "message": "Missing data for required field."},
        {"row": 12, "field": "price", "message": "Not a valid number."},
        {"row": 12, "field": "currency", "message": "Use a three-letter ISO 4217 code, e.g. USD."},
    ]  # fmt: skip
    assert calls == [(13, 13, "imported 2 rows, 11 failed")]
    assert skus() == ["OK-1", "OK-2"]
    assert Product.get(Product.sku == "OK-2").stock == 0


def test_values_the_database_would_refuse_are_row_errors(app: Flask, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "NUL,Has \x00 nul,,1.00,USD,1",
        "BIG,Huge stock,,1.00,USD,2147483648",
        "OK,Ok,,1,USD,1",
    )
    result, _ = run_import(path)
    assert [(e["row"], e["field"]) for e in result.errors] == [(1, "name"), (2, "stock")]
    assert skus() == ["OK"]


def test_errors_are_capped_while_failed_counts_every_row(app: Flask, tmp_path: Path) -> None:
    bad = [f"B{i},Bad {i},,free,USD,1" for i in range(150)]
    result, _ = run_import(write_csv(tmp_path, *bad, "GOOD,Good,,1.00,USD,1"))
    assert (result.created, result.failed) == (1, 150)
    assert len(result.errors) == MAX_ERRORS
    assert result.errors[-1] == {"row": 100, "field": "price", "message": "Not a valid number."}


@pytest.mark.parametrize("batch_size", [500, 1])
def test_a_repeated_sku_takes_the_later_row(app: Flask, tmp_path: Path, batch_size: int) -> None:
    path = write_csv(tmp_path, "A,First,,1.00,USD,1", "B,Other,,1.00,USD,1", "A,Second,,2.00,USD,2")
    result, _ = run_import(path, batch_size=batch_size)
    assert (result.created, result.updated, result.failed) == (2, 1, 0)
    apple = Product.get(Product.sku == "A")
    assert (apple.name, apple.price, apple.stock) == ("Second", Decimal("2.00"), 2)
    assert Product.select().count() == 2


def test_blank_lines_are_skipped(app: Flask, tmp_path: Path) -> None:
    result, calls = run_import(write_csv(tmp_path, "A,Apple,,1.00,USD,1", "", "B,Banana,,1,USD,1"))
    assert (result.created, result.failed, result.errors) == (2, 0, [])
    assert calls == [(3, 3, "imported 2 rows")]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not UTF-8"),
        (b"\x00\x01\x02binary\n", "not a text file"),
        (b"id,title,price\nA,Apple,1.00\n", "missing columns: 'sku', 'name'"),
        (b"sku,name,description,price,currency\nA,Apple,,1.00,USD\n", "missing columns: 'stock'"),
        (f"{HEADER_LINE},colour\nA,Apple,,1.00,USD,1,red\n".encode(), "unexpected columns"),
        (b"name,sku,description,price,currency,stock\n", "repeated or out of order"),
        (b"sku" + b" " * 70_000 + b"\n", "longer than 64 KiB"),
        (b"\xff\xfes\x00k\x00u\x00\n\x00", "not"),  # UTF-16
        (HEADER_LINE.encode() + b"\rA,Apple,,1.00,USD,1\r", "CR alone"),
    ],
)  # fmt: skip
def test_a_wrong_header_is_refused_and_nothing_is_written(
    app: Flask, tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidCsv) as checked:
        check_header(path)
    assert checked.value.error == "invalid_csv"
    assert checked.value.status_code == 422
    assert says in checked.value.message
    calls: ProgressCalls = []
    with pytest.raises(InvalidCsv, match=says):
        import_products(source=path, progress=lambda *call: calls.append(call))
    assert (Product.select().count(), calls, stream_events("products")) == (0, [], [])


def test_a_header_error_names_missing_and_unexpected_columns(tmp_path: Path) -> None:
    path = tmp_path / "upload.csv"
    path.write_text("sku,title,description,price,currency,stock\n")
    with pytest.raises(InvalidCsv) as refused:
        check_header(path)
    assert refused.value.errors == {"missing": ["name"], "unexpected": ["title"]}


def test_a_10_mb_line_is_a_row_error(app: Flask, tmp_path: Path) -> None:
    huge = "x" * 10_000_000
    path = write_csv(tmp_path, f"BIG,Big,{huge},1.00,USD,1", "OK,Ok,,1.00,USD,1")
    result, _ = run_import(path)
    assert (result.created, result.failed) == (1, 1)
    assert result.errors == [
        {"row": 1, "field": "row", "message": "The line is longer than 1,048,576 bytes."}
    ]
    assert skus() == ["OK"]


def test_a_quoted_field_over_the_size_limit_is_a_row_error(app: Flask, tmp_path: Path) -> None:
    # 1.2 MiB in one quoted value spread over many short lines: the csv field limit stops it.
    spread = "\n".join(["y" * 1000] * 1200)
    path = write_csv(tmp_path, "OK,Ok,,1.00,USD,1", f'BIG,Big,"{spread}",1.00,USD,1')
    result, _ = run_import(path)
    assert result.created == 1
    assert result.errors[0]["row"] == 2
    assert result.errors[0]["message"].startswith("Malformed CSV: field larger than field limit")
    assert skus() == ["OK"]


def test_formula_like_text_is_stored_verbatim(app: Flask, tmp_path: Path) -> None:
    formula = "=cmd|' /C calc'!A0"
    path = write_csv(
        tmp_path, f'F-1,"{formula}","+SUM(A1:A9)",1.00,USD,1', "F-2,@evil,-2+3,1,USD,1"
    )
    result, _ = run_import(path)
    assert result.created == 2
    first = Product.get(Product.sku == "F-1")
    assert (first.name, first.description) == (formula, "+SUM(A1:A9)")
    second = Product.get(Product.sku == "F-2")
    assert (second.name, second.description) == ("@evil", "-2+3")


def test_undecodable_bytes_stop_the_import_after_the_committed_batches(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "products.csv"
    good = [f"S{i},Product {i},,1.00,USD,1\n".encode() for i in range(1, 6)]
    path.write_bytes(
        HEADER_LINE.encode() + b"\n" + b"".join(good) + b"BAD,Caf\xe9,,1,USD,1\nZ,Z,,1,USD,1\n"
    )
    calls: ProgressCalls = []
    with pytest.raises(InvalidCsv) as stopped:
        import_products(source=path, progress=lambda *call: calls.append(call), batch_size=2)
    assert stopped.value.error == "invalid_csv"
    assert stopped.value.message.startswith("Row 6 is not UTF-8 text")
    assert "rows 1-4 were processed and their valid rows committed" in stopped.value.message
    # Batches S1-S2 and S3-S4 were committed; S5 was pending and is not written.
    assert skus() == ["S1", "S2", "S3", "S4"]
    assert calls == [(2, 7, "imported 2 rows"), (4, 7, "imported 4 rows")]


@pytest.mark.slow
@pytest.mark.heavy
def test_a_100_000_row_import_runs_in_bounded_memory(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER_LINE + "\n")
        for i in range(100_000):
            out.write(
                f"SKU-{i:06d},Product {i},A description of product {i},{i % 997}.99,EUR,{i % 50}\n"
            )
    make_product("SKU-000042", name="Already there")
    calls: ProgressCalls = []
    tracemalloc.start()
    try:
        result = import_products(source=path, progress=lambda *call: calls.append(call))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.created, result.updated, result.failed) == (99_999, 1, 0)
    assert peak < 30 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert len(calls) == 200
    assert calls[0][:2] == (500, 100_000)
    assert calls[-1] == (100_000, 100_000, "imported 100000 rows")
    assert Product.select().count() == 100_000
    assert Product.get(Product.sku == "SKU-099999").price == Decimal("299.99")
