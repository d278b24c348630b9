"""Job retries: what a job ran (function and arguments) and which job retried which (0011)."""

from __future__ import annotations

from peewee import CharField, Database, TextField
from playhouse.migrate import SchemaMigrator

COLUMNS = {
    "func": CharField(max_length=200, null=True),
    "args": TextField(null=True),
    "retry_of": CharField(max_length=64, null=True),
    "retried_as": CharField(max_length=64, null=True),
}


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Add `func`, `args`, `retry_of` and `retried_as` to `job` (all nullable)."""
    migrator.migrate(*(migrator.add_column("job", name, field) for name, field in COLUMNS.items()))


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the four columns."""
    migrator.migrate(*(migrator.drop_column("job", name) for name in COLUMNS))
