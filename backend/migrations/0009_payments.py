"""Payments: one per order, and the provider events already applied (0009: 0008 is webhooks')."""

from __future__ import annotations

import datetime
from decimal import Decimal

from peewee import (
    AutoField,
    CharField,
    Database,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    Model,
)
from playhouse.migrate import SchemaMigrator


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Create the `payment` and `provider_event` tables."""

    class Order(Model):
        class Meta:
            database = db
            table_name = "order"

    class Payment(Model):
        id = AutoField()
        order = ForeignKeyField(Order, unique=True, on_delete="CASCADE")
        provider = CharField(max_length=16, default="stripe")
        provider_payment_id = CharField(max_length=255, unique=True)
        status = CharField(max_length=20, default="requires_payment", index=True)
        amount = DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
        currency = CharField(max_length=3)
        client_secret = CharField(max_length=255, default="")
        attempt = IntegerField(default=1)
        checked_at = DateTimeField(null=True)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "payment"

    class ProviderEvent(Model):
        id = AutoField()
        provider = CharField(max_length=16)
        event_id = CharField(max_length=255)
        event_type = CharField(max_length=64)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "provider_event"
            indexes = ((("provider", "event_id"), True),)

    db.create_tables([Payment, ProviderEvent])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the `payment` and `provider_event` tables."""
    for table in ("provider_event", "payment"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
