"""Upload URLs: what each signed single-use URL may store (0007: 0006 is another branch's)."""

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
)
from playhouse.migrate import SchemaMigrator


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Create the `upload_url` table."""

    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class File(Model):
        class Meta:
            database = db
            table_name = "file"

    class UploadUrl(Model):
        id = AutoField()
        owner = ForeignKeyField(User, on_delete="CASCADE")
        session_id = BigIntegerField()
        kind = CharField(max_length=16)
        token_hash = CharField(max_length=64, unique=True)
        purpose = CharField(max_length=32)
        filename = CharField(max_length=255)
        content_type = CharField(max_length=127, null=True)
        max_bytes = BigIntegerField()
        expires_at = DateTimeField(index=True)
        used_at = DateTimeField(null=True)
        file = ForeignKeyField(File, null=True, on_delete="SET NULL")
        job_id = CharField(max_length=64, null=True)
        completed_at = DateTimeField(null=True)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "upload_url"

    db.create_tables([UploadUrl])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the `upload_url` table."""
    db.execute_sql('DROP TABLE IF EXISTS "upload_url"')
