"""Initial schema: user accounts.

Models here are frozen copies, independent of `backend.models`, so this file
keeps describing the schema as it was when later migrations change models.
"""

from __future__ import annotations

import datetime

from peewee import BooleanField, CharField, Database, DateTimeField, Model
from playhouse.migrate import SchemaMigrator


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Create the `user` table."""

    class User(Model):
        email = CharField(max_length=254, unique=True)
        password_hash = CharField(max_length=255)
        full_name = CharField(max_length=200, default="")
        role = CharField(max_length=16, default="user")
        is_active = BooleanField(default=True)
        email_verified = BooleanField(default=False)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "user"

    db.create_tables([User])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the `user` table."""
    db.execute_sql('DROP TABLE IF EXISTS "user"')
