"""Identities: accounts at identity providers (GitHub, Google, Azure, Auth0) linked to users."""

from __future__ import annotations

import datetime

from peewee import AutoField, CharField, Database, DateTimeField, ForeignKeyField, Model
from playhouse.migrate import SchemaMigrator


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Create the `identity` table, unique per (provider, provider user id) and (user, provider)."""

    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class Identity(Model):
        id = AutoField()
        user = ForeignKeyField(User, on_delete="CASCADE")
        provider = CharField(max_length=16)
        provider_user_id = CharField(max_length=255)
        email = CharField(max_length=254, default="")
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "identity"
            indexes = (
                (("provider", "provider_user_id"), True),
                (("user", "provider"), True),
            )

    db.create_tables([Identity])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the `identity` table."""
    db.execute_sql('DROP TABLE IF EXISTS "identity"')
