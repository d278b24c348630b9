"""Python client SDK for the flet-backend API (async first, with a blocking wrapper).

Example:
    ```python
    async with AsyncClient("http://127.0.0.1:8000") as client:
        await client.login("ada@example.com", "correct horse battery")
        page = await client.list_products(q="lamp")
        async with client.events(topics=["products"]) as stream:
            async for event in stream:
                ...
    ```
"""

from flet_backend_client.client import AsyncClient
from flet_backend_client.errors import (
    ApiError,
    AuthError,
    ConflictError,
    ConnectionFailed,
    ExpiredError,
    FletBackendError,
    ForbiddenError,
    InsufficientStockError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceUnavailableError,
    ValidationError,
)
from flet_backend_client.events import EventStream
from flet_backend_client.models import (
    AuditEvent,
    Event,
    FileInfo,
    Job,
    JobProgress,
    Notification,
    Order,
    OrderLine,
    Page,
    Payment,
    Product,
    Rendition,
    UploadStatus,
    UploadUrl,
    User,
)
from flet_backend_client.signin import Identity, PendingSignIn, Provider
from flet_backend_client.sync import Client, SyncEventStream
from flet_backend_client.tokens import MemoryTokenStore, Tokens, TokenStore

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuditEvent",
    "AuthError",
    "Client",
    "ConflictError",
    "ConnectionFailed",
    "Event",
    "EventStream",
    "ExpiredError",
    "FileInfo",
    "FletBackendError",
    "Identity",
    "ForbiddenError",
    "InsufficientStockError",
    "Job",
    "JobProgress",
    "MemoryTokenStore",
    "NotFoundError",
    "Notification",
    "Order",
    "OrderLine",
    "Page",
    "Payment",
    "PendingSignIn",
    "PreconditionFailedError",
    "Product",
    "Provider",
    "Rendition",
    "RateLimitedError",
    "ServiceUnavailableError",
    "SyncEventStream",
    "TokenStore",
    "Tokens",
    "UploadStatus",
    "UploadUrl",
    "User",
    "ValidationError",
]
