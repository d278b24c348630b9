"""Stored files."""

from __future__ import annotations

import datetime

from peewee import (
    AutoField,
    BigIntegerField,
    CharField,
    Database,
    DateTimeField,
    ForeignKeyField,
    Model,
    TextField,
)
from playhouse.migrate import SchemaMigrator


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Create the `file` table."""

    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class File(Model):
        id = AutoField()
        owner = ForeignKeyField(User, null=True, on_delete="SET NULL")
        filename = CharField(max_length=255)
        content_type = CharField(max_length=127)
        size = BigIntegerField()
        sha256 = CharField(max_length=64, index=True)
        purpose = CharField(max_length=32, default="upload", index=True)
        variants = TextField(default="{}")
        width = BigIntegerField(null=True)
        height = BigIntegerField(null=True)
        rendition_job_id = CharField(max_length=64, null=True)
        expires_at = DateTimeField(null=True, index=True)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "file"

    db.create_tables([File])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the `file` table."""
    db.execute_sql('DROP TABLE IF EXISTS "file"')
