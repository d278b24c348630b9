"""Catalog and orders: products, orders with their lines, idempotency keys, notifications."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from peewee import (
    BooleanField,
    CharField,
    Check,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from backend.models.base import BaseModel, UTCDateTimeField
from backend.models.fields import JSONTextField
from backend.models.user import User

# An order's life cycle: each status and the statuses it may move to next.
ORDER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "pending": ("confirmed", "cancelled"),
    "confirmed": ("shipped", "cancelled"),
    "shipped": ("delivered",),
    "delivered": (),
    "cancelled": (),
}
ORDER_STATUSES = tuple(ORDER_TRANSITIONS)
_PAYMENT = "_payment"  # where an order keeps its payment once read


class Product(BaseModel):
    """Something for sale. `stock` never goes below zero (a CHECK constraint guards it)."""

    sku = CharField(max_length=64, unique=True)
    name = CharField(max_length=200, index=True)
    description = TextField(default="")
    price = DecimalField(max_digits=12, decimal_places=2, auto_round=False)
    currency = CharField(max_length=3, default="USD")
    stock = IntegerField(default=0, constraints=[Check("stock >= 0")])
    is_active = BooleanField(default=True, index=True)
    image_file_id = IntegerField(null=True)


class Order(BaseModel):
    """A customer's order; its lines copy the price, sku and name at order time."""

    user = ForeignKeyField(User, backref="orders", on_delete="CASCADE")
    user_id: int
    lines: Iterable[OrderLine]  # OrderLine.order's backref: a query, or a list once prefetched
    status = CharField(max_length=16, default="pending", index=True)
    total = DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    currency = CharField(max_length=3)
    note = CharField(max_length=500, default="")
    idempotency_key = CharField(max_length=255, null=True)

    class Meta:
        indexes = ((("user", "idempotency_key"), True),)

    @property
    def payment(self) -> Any:
        """The order's `Payment`, or None before it is paid.

        The queries that read orders for the API set it (a LEFT JOIN, see
        `backend.services.orders`); otherwise it is read here, once.
        """
        if _PAYMENT not in self.__dict__:
            prefetched = self.__dict__.get("payments")  # as prefetch() leaves the backref
            found = self.payments.first() if prefetched is None else next(iter(prefetched), None)  # type: ignore[attr-defined]
            self.__dict__[_PAYMENT] = found
        return self.__dict__[_PAYMENT]

    @payment.setter
    def payment(self, value: Any) -> None:
        self.__dict__[_PAYMENT] = value


class OrderLine(BaseModel):
    """One product in an order, frozen at the moment of ordering."""

    order = ForeignKeyField(Order, backref="lines", on_delete="CASCADE")
    order_id: int
    product = ForeignKeyField(Product, backref="order_lines", on_delete="RESTRICT")
    product_id: int
    sku = CharField(max_length=64)
    name = CharField(max_length=200)
    unit_price = DecimalField(max_digits=12, decimal_places=2)
    quantity = IntegerField()
    line_total = DecimalField(max_digits=14, decimal_places=2)


class IdempotencyRecord(BaseModel):
    """The first response to a POST carrying an `Idempotency-Key`, replayed for 24 h."""

    user = ForeignKeyField(User, on_delete="CASCADE")
    user_id: int
    key = CharField(max_length=255)
    request_hash = CharField(max_length=64)
    response_status = IntegerField(null=True)
    response_body = JSONTextField(null=True)
    locked_at = UTCDateTimeField()
    expires_at = UTCDateTimeField(index=True)

    class Meta:
        indexes = ((("user", "key"), True),)


class Notification(BaseModel):
    """Something a user should know about; also pushed live."""

    user = ForeignKeyField(User, backref="notifications", on_delete="CASCADE")
    user_id: int
    kind = CharField(max_length=64)
    title = CharField(max_length=200)
    body = TextField(default="")
    data = JSONTextField(default=dict)
    read_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("user", "read_at"), False),)


__all__ = [
    "ORDER_STATUSES",
    "ORDER_TRANSITIONS",
    "IdempotencyRecord",
    "Notification",
    "Order",
    "OrderLine",
    "Product",
]
