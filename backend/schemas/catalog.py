"""Schemas for products and orders."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from backend.models import ORDER_STATUSES, ORDER_TRANSITIONS
from backend.models.fields import MAX_ID
from backend.schemas.fields import CENT, MONEY_DOC, JsonBoolean, Money
from backend.schemas.payments import PaymentSchema

MAX_PRICE = Decimal("9999999999.99")
CURRENCY = validate.Regexp(r"^[A-Z]{3}$", error="Use a three-letter ISO 4217 code, e.g. USD.")
ID = validate.Range(min=1, max=MAX_ID)  # an id a row can have
MAX_STOCK = 2**31 - 1  # the stock column is a 32-bit integer on PostgreSQL
SORT_FIELDS = ("name", "price", "created_at")
SORTS = [sort for name in SORT_FIELDS for sort in (name, f"-{name}")]  # "-": descending
# The statuses an admin may move an order to: every one some status leads to.
TARGET_STATUSES = [
    status
    for status in ORDER_STATUSES
    if any(status in targets for targets in ORDER_TRANSITIONS.values())
]


def two_places(value: Decimal) -> None:
    """Refuse amounts with more than two decimal places (or too many digits to round)."""
    try:
        exact = value == value.quantize(CENT)
    except InvalidOperation:  # 1e400: more digits than any price can have
        exact = False
    if not exact:
        raise ValidationError("At most two decimal places.")


# A price as input: at most MAX_PRICE, so ten digits before the point.
PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
PRICE_DOC = {
    **MONEY_DOC,
    "oneOf": [
        {"type": "string", "pattern": PRICE_PATTERN},
        {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01},
    ],
}


def money(**kwargs: Any) -> Money:
    """A non-negative amount with at most two decimals, as a decimal string in JSON."""
    return Money(
        as_string=True,
        pattern=PRICE_PATTERN,
        validate=[validate.Range(min=Decimal("0"), max=MAX_PRICE), two_places],
        metadata=PRICE_DOC,
        **kwargs,
    )


class ProductSchema(Schema):
    """A product as clients see it."""

    id = fields.Integer(dump_only=True)
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    price = money(required=True)
    currency = fields.String(load_default="USD", validate=CURRENCY)
    stock = fields.Integer(
        load_default=0, strict=True, validate=validate.Range(min=0, max=MAX_STOCK)
    )
    is_active = JsonBoolean(load_default=True)
    image_file_id = fields.Integer(load_default=None, allow_none=True, strict=True, validate=ID)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class ProductUpdateSchema(ProductSchema):
    """A partial product update: use it as `ProductUpdateSchema(partial=True)`."""


class ProductQuerySchema(Schema):
    """Catalog filters."""

    q = fields.String(validate=validate.Length(min=1, max=100))
    min_price = money()
    max_price = money()
    in_stock = fields.Boolean()
    sort = fields.String(load_default="name", validate=validate.OneOf(SORTS))

    @validates_schema
    def _price_range(self, data: dict[str, Any], **_kwargs: Any) -> None:
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError("min_price is above max_price.", field_name="min_price")


class OrderItemSchema(Schema):
    """One line of a new order."""

    product_id = fields.Integer(required=True, strict=True, validate=ID)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))


class OrderCreateSchema(Schema):
    """A new order."""

    items = fields.List(
        fields.Nested(OrderItemSchema), required=True, validate=validate.Length(min=1, max=100)
    )
    note = fields.String(load_default="", validate=validate.Length(max=500))


class OrderLineSchema(Schema):
    """A line of a placed order (prices frozen at order time)."""

    product_id = fields.Integer()
    sku = fields.String()
    name = fields.String()
    unit_price = Money(as_string=True, metadata=MONEY_DOC)
    quantity = fields.Integer()
    line_total = Money(as_string=True, metadata=MONEY_DOC)


class OrderSchema(Schema):
    """An order as clients see it."""

    id = fields.Integer()
    user_id = fields.Integer()
    status = fields.String()
    items = fields.List(fields.Nested(OrderLineSchema), attribute="lines")
    total = Money(as_string=True, metadata=MONEY_DOC)
    currency = fields.String()
    note = fields.String()
    payment = fields.Nested(
        PaymentSchema, allow_none=True, metadata={"description": "Null until paid"}
    )
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class OrderQuerySchema(Schema):
    """Order list filters (`user_id` for admins)."""

    user_id = fields.Integer(validate=ID)
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))


class OrderStatusSchema(Schema):
    """An admin's status change."""

    status = fields.String(required=True, validate=validate.OneOf(TARGET_STATUSES))
