"""Catalog and orders: products, orders, order lines, idempotency records, notifications."""

from __future__ import annotations

import datetime
from decimal import Decimal

from peewee import (
    BooleanField,
    CharField,
    Check,
    Database,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)
from playhouse.migrate import SchemaMigrator


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def up(migrator: SchemaMigrator, db: Database) -> None:
    """Create the catalog, order and notification tables."""

    class Base(Model):
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class Product(Base):
        sku = CharField(max_length=64, unique=True)
        name = CharField(max_length=200, index=True)
        description = TextField(default="")
        price = DecimalField(max_digits=12, decimal_places=2)
        currency = CharField(max_length=3, default="USD")
        stock = IntegerField(default=0, constraints=[Check("stock >= 0")])
        is_active = BooleanField(default=True, index=True)
        image_file_id = IntegerField(null=True)

    class Order(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        status = CharField(max_length=16, default="pending", index=True)
        total = DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
        currency = CharField(max_length=3)
        note = CharField(max_length=500, default="")
        idempotency_key = CharField(max_length=255, null=True)

        class Meta:
            indexes = ((("user", "idempotency_key"), True),)

    class OrderLine(Base):
        order = ForeignKeyField(Order, on_delete="CASCADE")
        product = ForeignKeyField(Product, on_delete="RESTRICT")
        sku = CharField(max_length=64)
        name = CharField(max_length=200)
        unit_price = DecimalField(max_digits=12, decimal_places=2)
        quantity = IntegerField()
        line_total = DecimalField(max_digits=14, decimal_places=2)

    class IdempotencyRecord(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        key = CharField(max_length=255)
        request_hash = CharField(max_length=64)
        response_status = IntegerField(null=True)
        response_body = TextField(null=True)
        locked_at = DateTimeField()
        expires_at = DateTimeField(index=True)

        class Meta:
            indexes = ((("user", "key"), True),)

    class Notification(Base):
        user = ForeignKeyField(User, on_delete="CASCADE")
        kind = CharField(max_length=64)
        title = CharField(max_length=200)
        body = TextField(default="")
        data = TextField(null=True)
        read_at = DateTimeField(null=True)

        class Meta:
            indexes = ((("user", "read_at"), False),)

    db.create_tables([Product, Order, OrderLine, IdempotencyRecord, Notification])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop the catalog, order and notification tables."""
    for table in ("notification", "idempotency_record", "order_line", "order", "product"):
        db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
