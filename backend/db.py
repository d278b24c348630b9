"""The one Peewee database, bound at app start from `DATABASE_URL`.

Models use `db` (a proxy) as their database. `init_app` binds it, gives each
request its own connection (closed by a teardown hook), and registers the
`flask db` commands. SQLite runs in WAL mode with a busy timeout and
immediate write transactions; connections are pooled in production.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask
from flask.cli import AppGroup
from peewee import Database, DatabaseProxy, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import parse as parse_url
from playhouse.migrations import Runner
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

db = DatabaseProxy()

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 5000,
    "foreign_keys": 1,
    "synchronous": "normal",
}
POSTGRES_SCHEMES = ("postgres", "postgresql")


def database_from_url(
    url: str,
    *,
    pooled: bool = False,
    pool_size: int = 20,
    postgres_pool: type[PooledPostgresqlDatabase] = PooledPostgresqlDatabase,
    connection_state: Callable[[], object] | None = None,
) -> Database:
    """Build an unconnected database for `url` (`sqlite:///...` or `postgresql://...`).

    A pooled PostgreSQL database is a `postgres_pool` (the optimisation layer
    passes a subclass), and `connection_state` makes what stands in for
    Peewee's per-thread connection state (the same layer's). Raises
    `ValueError` for any other scheme.
    """
    database = _database_for(url, pooled=pooled, pool_size=pool_size, postgres_pool=postgres_pool)
    if connection_state is not None:
        database._state = connection_state()  # type: ignore[attr-defined]  # unconnected yet
    return database


def _database_for(
    url: str, *, pooled: bool, pool_size: int, postgres_pool: type[PooledPostgresqlDatabase]
) -> Database:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.split("sqlite:///", 1)[1] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError("a SQLite DATABASE_URL looks like sqlite:///path/to/file.db")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if pooled and path != ":memory:":
            # Opening a connection and setting its pragmas costs ~2 ms: keep them.
            return PooledSqliteDatabase(
                path, pragmas=SQLITE_PRAGMAS, timeout=5, lock_type="IMMEDIATE",
                max_connections=pool_size, stale_timeout=300,
            )  # fmt: skip
        return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=5, lock_type="IMMEDIATE")
    if scheme in POSTGRES_SCHEMES:
        params = parse_url(url, unquote_password=True)
        name = params.pop("database")
        params.setdefault("connect_timeout", 5)
        if pooled:
            return postgres_pool(
                name, max_connections=pool_size, stale_timeout=300, timeout=10, **params
            )
        return PostgresqlDatabase(name, **params)
    raise ValueError(f"unsupported DATABASE_URL scheme {scheme!r}: use sqlite or postgresql")


MIGRATION_LOCK_ID = 7_305_118  # any constant; serialises concurrent upgrades on PostgreSQL


def migrate(database: Database) -> list[str]:
    """Apply every pending migration in order; return the names applied (idempotent).

    On PostgreSQL an advisory lock makes concurrent upgrades (say, two
    `release` processes) run one after the other instead of colliding.
    """
    locked = isinstance(database, PostgresqlDatabase)
    if locked:
        database.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    try:
        return list(Runner(database, str(MIGRATIONS_DIR)).up())
    finally:
        if locked:
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))


def lock_for_update(query: Any) -> Any:
    """Add `FOR UPDATE` on PostgreSQL; SQLite's write transactions already serialise."""
    if isinstance(db.obj, PostgresqlDatabase):
        return query.for_update()
    return query


_rebuild: list[functools.partial[Database]] = []  # how `bind` built the bound database
_inherited: list[Database] = []  # a forked child's databases of its parent, never used again


def bind(url: str, **options: Any) -> Database:
    """Bind `db` to a new database for `url` (`options` as `database_from_url`'s); return it.

    A process forked after this (a gunicorn worker, an RQ work horse) rebinds
    `db` to a fresh database of its own (`rebind_in_child`).
    """
    build = functools.partial(database_from_url, url, **options)
    database = build()
    db.initialize(database)
    _rebuild[:] = [build]
    return database


def rebind_in_child() -> None:
    """After a fork, bind `db` to a new database, leaving the parent's connections alone.

    A connection must never be used by two processes (the SQLite file lock
    and PostgreSQL's wire protocol both break), and closing it in the child
    would close the parent's too (psycopg2 says goodbye to the server). So the
    child keeps the inherited database object, unused and never collected, and
    opens its own connections through a new one built the same way.
    """
    if db.obj is None or not _rebuild:
        return
    _inherited.append(db.obj)
    db.initialize(_rebuild[0]())


os.register_at_fork(after_in_child=rebind_in_child)


def rebind_with(**options: Any) -> Database:
    """Bind `db` again as the last `bind` did, with `options` changed; return it.

    For app setup, before any connection is open (the old database is dropped
    unclosed). Raises `RuntimeError` when nothing was bound yet.
    """
    if not _rebuild:
        raise RuntimeError("rebind_with() needs bind() first")
    build = _rebuild[0]
    return bind(*build.args, **{**build.keywords, **options})


def _close_connection(_exc: BaseException | None) -> None:
    if not db.is_closed():
        db.close()


def init_app(app: Flask) -> None:
    """Bind `db` to the app's database, add per-request connections and `flask db`."""
    database = bind(
        app.config["DATABASE_URL"],
        pooled=app.config["ENV"] == "production",
        pool_size=app.config["DATABASE_POOL_SIZE"],
    )
    app.extensions["peewee"] = database
    # Each request (and each job, CLI command) gets its own connection: peewee
    # opens it on the first query, so /healthz, /metrics and static files
    # never touch the database; the teardown hooks close it (or, pooled,
    # return it) when the request or the app context ends.
    app.teardown_request(_close_connection)
    app.teardown_appcontext(_close_connection)
    app.cli.add_command(db_cli)


db_cli = AppGroup("db", help="Database schema commands.")


@db_cli.command("upgrade")
def upgrade_command() -> None:
    """Apply pending migrations (safe to run again)."""
    with db.connection_context():
        applied = migrate(db.obj)
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@db_cli.command("status")
def status_command() -> None:
    """List migrations and whether each is applied."""
    with db.connection_context():
        for migration in Runner(db.obj, str(MIGRATIONS_DIR)).status():
            state = "applied" if migration.applied else "pending"
            click.echo(f"{migration.name}: {state}")
