"""Audit: an index for reading the trail by target (`GET /audit?target=order:12`)."""

from __future__ import annotations

from peewee import Database
from playhouse.migrate import SchemaMigrator, migrate


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Index `audit_event` on (target_type, target_id)."""
    migrate(migrator.add_index("audit_event", ("target_type", "target_id"), False))
