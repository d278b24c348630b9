"""Accounts: device sessions, one-time tokens and audit events."""

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
    """Create `auth_session`, `one_time_token` and `audit_event`."""

    class Base(Model):
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class AuthSession(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        device_name = CharField(max_length=100, default="")
        user_agent = CharField(max_length=300, default="")
        ip = CharField(max_length=64, default="")
        last_seen_at = DateTimeField(default=_now)
        current_jti = CharField(max_length=64, index=True)
        previous_jti = CharField(max_length=64, null=True)
        rotated_at = DateTimeField(null=True)
        rotations = IntegerField(default=0)
        revoked_at = DateTimeField(null=True)
        revoked_reason = CharField(max_length=32, null=True)

    class OneTimeToken(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        purpose = CharField(max_length=32)
        token_hash = CharField(max_length=64, unique=True)
        expires_at = DateTimeField()
        used_at = DateTimeField(null=True)

    class AuditEvent(Base):
        actor = ForeignKeyField(User, null=True, on_delete="SET NULL")
        action = CharField(max_length=64, index=True)
        target_type = CharField(max_length=32, null=True)
        target_id = CharField(max_length=64, null=True)
        ip = CharField(max_length=64, default="")
        request_id = CharField(max_length=128, default="")
        data = TextField(null=True)

    db.create_tables([AuthSession, OneTimeToken, AuditEvent])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the accounts tables."""
    for table in ("audit_event", "one_time_token", "auth_session"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
