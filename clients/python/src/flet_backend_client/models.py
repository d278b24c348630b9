"""Typed, immutable views of the API's resources, built from JSON (extra fields ignored)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, Generic, TypeVar

T = TypeVar("T")
JSON = Mapping[str, Any]


def _dt(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp; None for missing or empty."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _money(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else "0"))


@dataclass(frozen=True)
class User:
    """An account."""

    id: int
    email: str
    full_name: str
    role: str
    is_active: bool
    email_verified: bool
    created_at: datetime | None

    @property
    def is_admin(self) -> bool:
        """Whether the user has the admin role."""
        return self.role == "admin"

    @classmethod
    def from_json(cls, data: JSON) -> User:
        """Build from the API's JSON."""
        return cls(
            id=int(data["id"]),
            email=str(data.get("email", "")),
            full_name=str(data.get("full_name") or ""),
            role=str(data.get("role", "user")),
            is_active=bool(data.get("is_active", True)),
            email_verified=bool(data.get("email_verified", False)),
            created_at=_dt(data.get("created_at")),
        )


@dataclass(frozen=True)
class Product:
    """A catalog product; `price` is a `Decimal` in `currency`."""

    id: int
    sku: str
    name: str
    description: str
    price: Decimal
    currency: str
    stock: int
    is_active: bool
    image_file_id: int | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_json(cls, data: JSON) -> Product:
        """Build from the API's JSON."""
        image = data.get("image_file_id")
        return cls(
            id=int(data["id"]),
            sku=str(data.get("sku", "")),
            name=str(data.get("name", "")),
            description=str(data.get("description") or ""),
            price=_money(data.get("price")),
            currency=str(data.get("currency", "USD")),
            stock=int(data.get("stock") or 0),
            is_active=bool(data.get("is_active", True)),
            image_file_id=int(image) if image is not None else None,
            created_at=_dt(data.get("created_at")),
            updated_at=_dt(data.get("updated_at")),
        )


@dataclass(frozen=True)
class OrderLine:
    """One line of an order, with the price and names copied at order time."""

    product_id: int
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal

    @classmethod
    def from_json(cls, data: JSON) -> OrderLine:
        """Build from the API's JSON."""
        return cls(
            product_id=int(data["product_id"]),
            sku=str(data.get("sku", "")),
            name=str(data.get("name", "")),
            unit_price=_money(data.get("unit_price")),
            quantity=int(data.get("quantity") or 0),
            line_total=_money(data.get("line_total")),
        )


PAYMENT_OPEN = frozenset({"requires_payment", "processing"})


@dataclass(frozen=True)
class Payment:
    """An order's payment with the provider (Stripe); `amount` is a `Decimal` in `currency`.

    `status`: `requires_payment`, `processing`, `succeeded`, `failed` (the
    customer may try again with the same payment) or `cancelled`.
    `client_secret` completes the payment in the provider's client SDK; only
    `pay` returns it (orders and events leave it out: `""`).
    """

    id: int
    order_id: int
    provider: str
    provider_payment_id: str
    status: str
    amount: Decimal
    currency: str
    client_secret: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_paid(self) -> bool:
        """Whether the provider took the money."""
        return self.status == "succeeded"

    @property
    def is_open(self) -> bool:
        """Whether the payment is still waiting for the customer or the provider."""
        return self.status in PAYMENT_OPEN

    @classmethod
    def from_json(cls, data: JSON) -> Payment:
        """Build from the API's JSON (or a `payment.*` event's data)."""
        return cls(
            id=int(data["id"]),
            order_id=int(data.get("order_id") or 0),
            provider=str(data.get("provider") or ""),
            provider_payment_id=str(data.get("provider_payment_id") or ""),
            status=str(data.get("status", "")),
            amount=_money(data.get("amount")),
            currency=str(data.get("currency", "USD")),
            client_secret=str(data.get("client_secret") or ""),
            created_at=_dt(data.get("created_at")),
            updated_at=_dt(data.get("updated_at")),
        )


@dataclass(frozen=True)
class Order:
    """An order and its lines; `payment` is None until it is paid (see `AsyncClient.pay`)."""

    id: int
    user_id: int
    status: str
    items: tuple[OrderLine, ...]
    total: Decimal
    currency: str
    note: str
    created_at: datetime | None
    updated_at: datetime | None
    payment: Payment | None = None

    @classmethod
    def from_json(cls, data: JSON) -> Order:
        """Build from the API's JSON."""
        payment = data.get("payment")
        return cls(
            id=int(data["id"]),
            user_id=int(data.get("user_id") or 0),
            status=str(data.get("status", "")),
            items=tuple(OrderLine.from_json(line) for line in data.get("items") or ()),
            total=_money(data.get("total")),
            currency=str(data.get("currency", "USD")),
            note=str(data.get("note") or ""),
            created_at=_dt(data.get("created_at")),
            updated_at=_dt(data.get("updated_at")),
            payment=Payment.from_json(payment) if isinstance(payment, Mapping) else None,
        )


@dataclass(frozen=True)
class Notification:
    """A message for the user (order status changed, job finished, ...)."""

    id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    read_at: datetime | None
    created_at: datetime | None

    @property
    def is_read(self) -> bool:
        """Whether it was marked read."""
        return self.read_at is not None

    @classmethod
    def from_json(cls, data: JSON) -> Notification:
        """Build from the API's JSON."""
        return cls(
            id=int(data["id"]),
            kind=str(data.get("kind", "")),
            title=str(data.get("title", "")),
            body=str(data.get("body") or ""),
            data=dict(data.get("data") or {}),
            read_at=_dt(data.get("read_at")),
            created_at=_dt(data.get("created_at")),
        )


@dataclass(frozen=True)
class JobProgress:
    """How far a job got: `done` of `total` (None when unknown)."""

    done: int = 0
    total: int | None = None
    percent: float | None = None
    message: str = ""

    @classmethod
    def from_json(cls, data: JSON | None) -> JobProgress:
        """Build from the API's JSON."""
        data = data or {}
        total, percent = data.get("total"), data.get("percent")
        return cls(
            done=int(data.get("done") or 0),
            total=int(total) if total is not None else None,
            percent=float(percent) if percent is not None else None,
            message=str(data.get("message") or ""),
        )


JOB_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Job:
    """A background job; `result` is whatever the job returned (JSON)."""

    id: str
    kind: str
    status: str
    progress: JobProgress
    result: Any = None
    error: str | None = None
    cancel_requested: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the job has ended (succeeded, failed or cancelled)."""
        return self.status in JOB_TERMINAL

    @classmethod
    def from_json(cls, data: JSON) -> Job:
        """Build from the API's JSON (or a `job.*` event's data)."""
        error = data.get("error")
        return cls(
            id=str(data["id"]),
            kind=str(data.get("kind", "")),
            status=str(data.get("status", "")),
            progress=JobProgress.from_json(data.get("progress")),
            result=data.get("result"),
            error=str(error) if error is not None else None,
            cancel_requested=bool(data.get("cancel_requested", False)),
            created_at=_dt(data.get("created_at")),
            started_at=_dt(data.get("started_at")),
            finished_at=_dt(data.get("finished_at")),
        )


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit trail (admins read it): who did what, to what, from where, when.

    `action` is a dotted name (`auth.login`, `user.registered`, `order.status_changed`);
    `actor_id` is None for an anonymous caller or a deleted account; `target` is what was
    acted on as `type:id` (`order:12`, `user:3`), or None; `data` holds the action's details.
    """

    id: int
    action: str
    actor_id: int | None
    target: str | None
    ip: str
    request_id: str
    data: dict[str, Any]
    created_at: datetime | None

    @property
    def target_type(self) -> str | None:
        """The target's type (`order` of `order:12`), or None without a target."""
        return self.target.partition(":")[0] if self.target else None

    @property
    def target_id(self) -> str | None:
        """The target's id as text (`12` of `order:12`), or None without a target."""
        return self.target.partition(":")[2] if self.target else None

    @classmethod
    def from_json(cls, data: JSON) -> AuditEvent:
        """Build from the API's JSON."""
        actor, target = data.get("actor_id"), data.get("target")
        return cls(
            id=int(data["id"]),
            action=str(data.get("action", "")),
            actor_id=int(actor) if actor is not None else None,
            target=str(target) if target else None,
            ip=str(data.get("ip") or ""),
            request_id=str(data.get("request_id") or ""),
            data=dict(data.get("data") or {}),
            created_at=_dt(data.get("created_at")),
        )


@dataclass(frozen=True)
class Rendition:
    """A ready image rendition; `url` is absolute and content-addressed (cache it for good)."""

    name: str
    width: int
    height: int
    size: int
    content_type: str
    url: str


@dataclass(frozen=True)
class FileInfo:
    """An uploaded file's metadata.

    `variants` names the image renditions that are ready; `renditions` describes
    them with their absolute, content-addressed URLs; `url` is the original's.
    """

    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    variants: tuple[str, ...]
    created_at: datetime | None
    url: str = ""
    renditions: Mapping[str, Rendition] = field(default_factory=dict)
    rendition_job_id: str | None = None

    @classmethod
    def from_json(cls, data: JSON, base_url: str = "") -> FileInfo:
        """Build from the API's JSON; relative URLs are joined to `base_url` (`http://host:port`).

        `variants` may be a list of names or an object of renditions.
        """
        variants = data.get("variants") or ()
        described = variants if isinstance(variants, Mapping) else {}
        renditions = {
            str(name): Rendition(
                name=str(name),
                width=int(info.get("width") or 0),
                height=int(info.get("height") or 0),
                size=int(info.get("size") or 0),
                content_type=str(info.get("content_type") or ""),
                url=_absolute(base_url, info.get("url")),
            )  # fmt: skip
            for name, info in described.items()
            if isinstance(info, Mapping)
        }
        job_id = data.get("rendition_job_id")
        return cls(
            id=int(data["id"]),
            filename=str(data.get("filename", "")),
            content_type=str(data.get("content_type", "")),
            size=int(data.get("size") or 0),
            sha256=str(data.get("sha256") or ""),
            variants=tuple(str(v) for v in variants),
            created_at=_dt(data.get("created_at")),
            url=_absolute(base_url, data.get("url")),
            renditions=renditions,
            rendition_job_id=str(job_id) if job_id else None,
        )


def _absolute(base_url: str, url: Any) -> str:
    if not url:
        return ""
    text = str(url)
    return text if "://" in text else base_url.rstrip("/") + "/" + text.lstrip("/")


Resource = Product | Order | Notification | Payment
# The server dumps each of these events' data through the resource's own schema, so it is
# parsed by the same model as a GET of that resource.
RESOURCE_EVENTS: Mapping[str, Callable[[JSON], Resource]] = {
    "product": Product.from_json,  # product.created | updated | deleted, on `products`
    "order": Order.from_json,  # order.created | status_changed, on `user:{id}` and `admin`
    "notification": Notification.from_json,  # notification.created, on `user:{id}`
    "payment": Payment.from_json,  # payment.succeeded | failed, on `user:{id}` and `admin`
}


@dataclass(frozen=True)
class Event:
    """One live event: an opaque resume `id`, its `type` and its JSON `data`."""

    id: str | None
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def resource(self) -> Resource | None:
        """The resource a `product.*`, `order.*`, `notification.*` or `payment.*` event carries.

        It is built by the model a GET of that resource builds (`Product`,
        `Order`, `Notification`; `Payment` as an order's `payment`), from the
        same fields; None for other events. A `product.deleted`
        event on `admin` carries the product's last state; on the public
        `products` topic it carries the id alone (see `removed_id`): then None.
        """
        kind, dot, _ = self.type.partition(".")
        build = RESOURCE_EVENTS.get(kind) if dot else None
        if build is None or "id" not in self.data or self.removed_id is not None:
            return None
        return build(self.data)

    @property
    def removed_id(self) -> int | None:
        """The id a `*.deleted` event that carries nothing else removes from view, else None.

        The public `products` topic says only this when a product stops being
        visible (deactivated or deleted): drop it from what you show.
        """
        if not self.type.endswith(".deleted") or set(self.data) != {"id"}:
            return None
        removed = self.data["id"]
        return removed if isinstance(removed, int) else None

    @classmethod
    def from_sse(cls, event_id: str, event_type: str, raw: str) -> Event:
        """Build from an SSE frame; non-object data is kept under `value`."""
        try:
            parsed: Any = json.loads(raw) if raw else {}
        except ValueError:
            parsed = raw
        data = parsed if isinstance(parsed, dict) else {"value": parsed}
        return cls(id=event_id or None, type=event_type, data=data)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with the totals from the `X-Pagination` header."""

    items: list[T]
    total: int
    page: int
    page_size: int
    total_pages: int

    @property
    def has_next(self) -> bool:
        """Whether a later page exists."""
        return self.page < self.total_pages

    @classmethod
    def from_header(cls, items: list[T], header: str | None, page: int, page_size: int) -> Page[T]:
        """Build from the items and the raw `X-Pagination` JSON header."""
        try:
            meta: Any = json.loads(header) if header else {}
        except ValueError:
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        total = int(meta.get("total", len(items)))
        pages = meta.get("total_pages")
        if pages is None:
            pages = -(-total // page_size) if page_size else 1
        return cls(
            items=items,
            total=total,
            page=int(meta.get("page", page)),
            page_size=page_size,
            total_pages=int(pages),
        )


@dataclass(frozen=True)
class UploadUrl:
    """Where to PUT one file's raw bytes, without credentials, until `expires_at`."""

    upload_url: str
    method: str
    expires_at: datetime | None
    max_bytes: int
    upload_id: str = ""

    @classmethod
    def from_json(cls, data: JSON) -> UploadUrl:
        """Build from the API's JSON."""
        return cls(
            upload_url=str(data["upload_url"]),
            method=str(data.get("method") or "PUT"),
            expires_at=_dt(data.get("expires_at")),
            max_bytes=int(data.get("max_bytes") or 0),
            upload_id=str(data.get("upload_id") or ""),
        )


@dataclass(frozen=True)
class UploadStatus:
    """What became of an upload URL: `pending` until its PUT stored the bytes.

    Then `completed`, with the stored `file`, or for an import URL the `job` it started.
    Flet's `FilePicker.upload` reports progress but not the server's answer: this is
    how an app learns the new file's id.
    """

    upload_id: str
    status: str
    file: FileInfo | None = None
    job: Job | None = None

    @classmethod
    def from_json(cls, data: JSON, base_url: str = "") -> UploadStatus:
        """Build from the API's JSON."""
        file, job = data.get("file"), data.get("job")
        return cls(
            upload_id=str(data.get("upload_id") or ""),
            status=str(data.get("status") or "pending"),
            file=FileInfo.from_json(file, base_url) if isinstance(file, Mapping) else None,
            job=Job.from_json(job) if isinstance(job, Mapping) else None,
        )
