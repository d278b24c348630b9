"""Outgoing webhooks: endpoints and their deliveries (0008: 0009 is another branch's)."""

from __future__ import annotations

import datetime

from peewee import (
    AutoField,
    BooleanField,
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
    """Create `webhook_endpoint` and `webhook_delivery`, indexed for the dispatcher."""

    class WebhookEndpoint(Model):
        id = AutoField()
        url = CharField(max_length=2000)
        events = TextField(default="[]")
        description = CharField(max_length=500, default="")
        is_active = BooleanField(default=True, index=True)
        secret = CharField(max_length=100)
        previous_secret = CharField(max_length=100, null=True)
        previous_secret_until = DateTimeField(null=True)
        consecutive_failures = IntegerField(default=0)
        failing_since = DateTimeField(null=True)
        disabled_reason = CharField(max_length=200, null=True)
        disabled_at = DateTimeField(null=True)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "webhook_endpoint"

    class WebhookDelivery(Model):
        id = AutoField()
        endpoint = ForeignKeyField(WebhookEndpoint, on_delete="CASCADE")
        webhook_id = CharField(max_length=64, index=True)
        event_id = CharField(max_length=64, index=True)
        event_type = CharField(max_length=64)
        payload = TextField(default="{}")
        occurred_at = DateTimeField()
        status = CharField(max_length=16, default="pending")
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(null=True)
        claimed_until = DateTimeField(null=True)
        claim_token = CharField(max_length=32, null=True)
        response_status = IntegerField(null=True)
        response_body = TextField(null=True)
        last_error = CharField(max_length=500, null=True)
        duration_ms = IntegerField(null=True)
        delivered_at = DateTimeField(null=True)
        created_at = DateTimeField(default=_now)
        updated_at = DateTimeField(default=_now)

        class Meta:
            database = db
            table_name = "webhook_delivery"
            indexes = (
                (("status", "next_attempt_at"), False),
                (("endpoint", "id"), False),
            )

    db.create_tables([WebhookEndpoint, WebhookDelivery])


def down(migrator: SchemaMigrator, db: Database) -> None:
    """Drop both tables."""
    db.execute_sql('DROP TABLE IF EXISTS "webhook_delivery"')
    db.execute_sql('DROP TABLE IF EXISTS "webhook_endpoint"')
