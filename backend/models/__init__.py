"""Peewee models: one module per resource, all sharing `BaseModel`."""

from backend.models.auth import AuditEvent, AuthSession, OneTimeToken
from backend.models.base import BaseModel, UTCDateTimeField, utcnow
from backend.models.catalog import (
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    IdempotencyRecord,
    Notification,
    Order,
    OrderLine,
    Product,
)
from backend.models.files import FILE_PURPOSES, RENDITIONS, File, UploadUrl
from backend.models.identities import PROVIDERS, Identity
from backend.models.jobs import JOB_STATUSES, TERMINAL_STATUSES, Job, progress_of
from backend.models.payments import (
    OPEN_PAYMENT_STATUSES,
    PAYMENT_STATUSES,
    PAYMENT_TRANSITIONS,
    Payment,
    ProviderEvent,
)
from backend.models.user import User
from backend.models.webhooks import (
    DELIVERY_STATUSES,
    TEST_EVENT_TYPE,
    WEBHOOK_EVENT_TYPES,
    WEBHOOK_WILDCARDS,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "FILE_PURPOSES",
    "File",
    "Identity",
    "PROVIDERS",
    "JOB_STATUSES",
    "ORDER_STATUSES",
    "RENDITIONS",
    "ORDER_TRANSITIONS",
    "TERMINAL_STATUSES",
    "Job",
    "OPEN_PAYMENT_STATUSES",
    "PAYMENT_STATUSES",
    "PAYMENT_TRANSITIONS",
    "Payment",
    "ProviderEvent",
    "AuditEvent",
    "AuthSession",
    "BaseModel",
    "IdempotencyRecord",
    "Notification",
    "OneTimeToken",
    "Order",
    "OrderLine",
    "Product",
    "UTCDateTimeField",
    "UploadUrl",
    "User",
    "DELIVERY_STATUSES",
    "TEST_EVENT_TYPE",
    "WEBHOOK_EVENT_TYPES",
    "WEBHOOK_WILDCARDS",
    "WebhookDelivery",
    "WebhookEndpoint",
    "progress_of",
    "utcnow",
]
