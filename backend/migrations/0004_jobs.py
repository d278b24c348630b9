"""Background job records."""

from __future__ import annotations

import datetime

from peewee import (
    CharField,
    Database,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)
from playhouse.migrate import SchemaMigrator


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Create the `job` table."""

    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class Job(Model):
        id = CharField(max_length=64, primary_key=True)
        user = ForeignKeyField(User, null=True, on_delete="SET NULL")
        kind = CharField(max_length=64, index=True)
        queue = CharField(max_length=32, default="default")
        status = CharField(max_length=16, default="queued", index=True)
        progress_done = IntegerField(default=0)
        progress_total = IntegerField(null=True)
        progress_message = CharField(max_length=300, default="")
        result = TextField(null=True)
        error = TextField(null=True)
        cancel_requested = DateTimeField(null=True)
        started_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "job"

    db.create_tables([Job])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the `job` table."""
    db.execute_sql('DROP TABLE IF EXISTS "job"')
