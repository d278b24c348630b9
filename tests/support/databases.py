"""The test suite's stores: a migrated database per session, and Redis database numbers.

The database is SQLite unless `DATABASE_URL` names PostgreSQL, in which case a
throw-away database is created on that server for the session.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from peewee import Database

from backend.db import database_from_url, migrate


def with_redis_db(url: str, number: int) -> str:
    """Return `url` pointing at Redis database `number`."""
    if url.startswith("unix://"):
        return f"{url.split('?', 1)[0]}?db={number}"
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


class TestDatabase:
    """A migrated database for the session, reset to empty before each test."""

    def __init__(self, base_url: str | None, workdir: Path) -> None:
        """Create and migrate the session's database."""
        self.workdir = workdir
        self.postgres_admin_url = base_url if base_url and base_url.startswith("postgres") else None
        if self.postgres_admin_url:
            self.name = f"flet_backend_test_{uuid.uuid4().hex[:8]}"
            self._admin_sql(f'CREATE DATABASE "{self.name}"')
            self.url = urlunsplit(urlsplit(self.postgres_admin_url)._replace(path=f"/{self.name}"))
        else:
            self.template = workdir / "template.db"
            self.url = f"sqlite:///{self.template}"
        database = database_from_url(self.url)
        with database.connection_context():
            migrate(database)
            self.tables = [t for t in database.get_tables() if t != "schema_migration"]
        database.close()

    def _admin_sql(self, sql: str) -> None:
        assert self.postgres_admin_url is not None
        admin = database_from_url(self.postgres_admin_url)
        admin.connect()
        admin.connection().autocommit = True
        admin.execute_sql(sql)
        admin.close()

    def fresh_url(self, tmp_path: Path) -> str:
        """Return the URL of an empty, fully migrated database for one test."""
        if self.postgres_admin_url is None:
            target = tmp_path / "test.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        database: Database = database_from_url(self.url)
        with database.connection_context(), database.atomic():
            # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE's new files cost
            # a WAL flush each (~0.1 s per test, minutes over the suite). Foreign keys are
            # not checked while every table is emptied (`replica` skips their triggers).
            database.execute_sql("SET LOCAL session_replication_role = replica")
            for table in self.tables:
                database.execute_sql(f'DELETE FROM "{table}"')  # noqa: S608 (names from the catalog)
            for (sequence,) in database.execute_sql(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
                " AND sequencename NOT LIKE %s",
                ("schema_migration%",),
            ).fetchall():
                database.execute_sql(f'ALTER SEQUENCE "{sequence}" RESTART')
        return self.url

    def drop(self) -> None:
        """Remove the session's PostgreSQL database."""
        if self.postgres_admin_url:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
