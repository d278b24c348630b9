"""Orders: placing them without overselling, their life cycle, and their events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import structlog
from peewee import JOIN, IntegrityError, ModelSelect, prefetch

from backend import cache
from backend.channels import ADMIN, user_channel
from backend.db import db
from backend.errors import BusinessRuleViolation, Conflict, ValidationFailed
from backend.events import publish_after_commit
from backend.models import ORDER_TRANSITIONS, Order, OrderLine, Payment, Product, User, utcnow
from backend.schemas.catalog import OrderSchema
from backend.services import audit, notifications, products, webhooks
from backend.services.access import get_visible, is_admin, require_role
from backend.services.audit import ClientInfo

log = structlog.get_logger(__name__)

STATUS_TITLES = {
    "confirmed": "Your order is confirmed",
    "shipped": "Your order is on its way",
    "delivered": "Your order was delivered",
    "cancelled": "Your order was cancelled",
}
_SCHEMA = OrderSchema()  # one instance: building a schema costs more than a dump


def cache_namespace(order_id: int) -> str:
    """Return the `backend.cache` namespace of one order (what `GET /orders/{id}` shows)."""
    return f"order:{order_id}"


def changed_after_commit(order_id: int) -> None:
    """Make cached copies of the order stale once this transaction commits.

    Call it from every write to the order, its lines or its payment.
    """
    db.after_commit(lambda: cache.invalidate(cache_namespace(order_id)))


def with_payment(query: ModelSelect[Order] | None = None) -> ModelSelect[Order]:
    """Orders joined to their payment (LEFT JOIN: `order.payment` is None until paid)."""
    selected = Order.select(Order, Payment) if query is None else query.select(Order, Payment)
    return selected.join(
        Payment, JOIN.LEFT_OUTER, on=(Payment.order == Order.id), attr="payment"
    ).switch(Order)


@dataclass(frozen=True)
class OrderItem:
    """A requested product and quantity."""

    product_id: int
    quantity: int


def place_order(
    *, user: User, items: list[OrderItem], note: str, idempotency_key: str | None
) -> tuple[Order, bool]:
    """Place an order, taking stock for every line in one transaction.

    Lines for the same product are merged. Returns the order and whether it
    was created now (False: this user already placed it with this key).
    Raises `ValidationFailed` for unknown or inactive products, mixed
    currencies or a merged quantity above 1000, and `BusinessRuleViolation`
    (`insufficient_stock`, listing each short product) when stock is short.
    """
    if idempotency_key is not None:
        existing = Order.get_or_none(
            (Order.user == user.id) & (Order.idempotency_key == idempotency_key)
        )
        if existing is not None:
            return existing, False
    wanted = _merge(items)
    try:
        with db.atomic():
            catalog = _load_products(wanted)
            taken = _take_stock(wanted)
            order = _create_order(user, catalog, wanted, note, idempotency_key)
            products.stock_changed(taken)
            _announce(order, "order.created")
    except _ShortStock as short:
        raise _insufficient(short.product_ids, wanted) from None
    except IntegrityError:
        # A concurrent request with the same key committed first: return its order.
        if idempotency_key is None:
            raise
        return Order.get(
            (Order.user == user.id) & (Order.idempotency_key == idempotency_key)
        ), False
    return order, True


def list_orders(
    *, user: User, owner_id: int | None, status: str | None, page: int, page_size: int
) -> tuple[list[Order], int]:
    """Return a page of orders, newest first: the caller's own, or anyone's for admins."""
    query = Order.select()
    if not is_admin(user):
        query = query.where(Order.user == user.id)
    elif owner_id is not None:
        query = query.where(Order.user == owner_id)
    if status is not None:
        query = query.where(Order.status == status)
    total = query.count()
    page_query = with_payment(query).order_by(Order.id.desc()).paginate(page, page_size)
    return list(prefetch(page_query, OrderLine.select().order_by(OrderLine.id))), total


def get_order(*, user: User, order_id: int, owner_only: bool = False) -> Order:
    """Return an order the caller may see (own, or any for admins), with its payment.

    `owner_only`: admins too see only their own. Raises `NotFound`.
    """
    return get_visible(
        Order, order_id, user=user, owner=Order.user, admin_sees_all=not owner_only,
        query=with_payment(),
    )  # fmt: skip


def confirm_paid(*, order_id: int) -> Order | None:
    """Confirm a pending order now that its payment succeeded (the provider said so).

    The same step as an admin's confirmation (stock kept, notification,
    `order.status_changed`), with no actor to audit. Returns None, and
    changes nothing, when the order is no longer pending (cancelled meanwhile:
    the money then needs refunding, which is logged).
    """
    order = Order.get_or_none(Order.id == order_id)
    if order is not None and order.status == "pending":
        try:
            return _transition(order, "confirmed", actor=None, client=None)
        except Conflict:
            pass
    log.error("paid_order_not_pending", order_id=order_id)
    return None


def cancel_order(*, user: User, order_id: int, client: ClientInfo) -> Order:
    """Cancel a pending or confirmed order and put its stock back (owner or admin).

    Raises `NotFound`, or `Conflict` (`invalid_transition`) in any other state.
    """
    order = get_order(user=user, order_id=order_id)
    return _transition(order, "cancelled", actor=user, client=client)


def set_status(*, actor: User, order_id: int, status: str, client: ClientInfo) -> Order:
    """Move an order along pending → confirmed → shipped → delivered (admin).

    Raises `Forbidden`, `NotFound` or `Conflict` (`invalid_transition`).
    """
    require_role(actor, "admin")
    order = get_order(user=actor, order_id=order_id)
    return _transition(order, status, actor=actor, client=client)


class _ShortStock(Exception):
    def __init__(self, product_ids: list[int]) -> None:
        super().__init__(product_ids)
        self.product_ids = product_ids


def _merge(items: list[OrderItem]) -> dict[int, int]:
    wanted: Counter[int] = Counter()
    for item in items:
        wanted[item.product_id] += item.quantity
    too_many = [pid for pid, qty in wanted.items() if qty > 1000]
    if too_many:
        message = "At most 1000 of one product per order."
        raise ValidationFailed(message, errors={"json": {"items": {"product_ids": too_many}}})
    return dict(sorted(wanted.items()))  # sorted: rows are locked in one order everywhere


def _load_products(wanted: dict[int, int]) -> dict[int, Product]:
    found = {p.id: p for p in Product.select().where(Product.id.in_(list(wanted)))}
    unusable = sorted(pid for pid in wanted if pid not in found or not found[pid].is_active)
    if unusable:
        message = "Some products do not exist or are not for sale."
        raise ValidationFailed(
            message, error="unknown_product", errors={"json": {"items": {"product_ids": unusable}}}
        )
    if len({p.currency for p in found.values()}) > 1:
        raise ValidationFailed(
            "All products of an order must share one currency.", error="mixed_currency"
        )
    return found


def _take_stock(wanted: dict[int, int]) -> list[Product]:
    short = []
    now = utcnow()
    for product_id, quantity in wanted.items():
        # Conditional decrement: the check and the write are one statement,
        # so no concurrent order can see the same stock.
        taken = (
            Product.update(stock=Product.stock - quantity, updated_at=now)
            .where((Product.id == product_id) & (Product.stock >= quantity))
            .execute()
        )
        if taken != 1:
            short.append(product_id)
    if short:
        raise _ShortStock(short)
    return list(Product.select().where(Product.id.in_(list(wanted))))


def _insufficient(product_ids: list[int], wanted: dict[int, int]) -> BusinessRuleViolation:
    stock = {p.id: p.stock for p in Product.select().where(Product.id.in_(product_ids))}
    short = [
        {"product_id": pid, "requested": wanted[pid], "available": stock.get(pid, 0)}
        for pid in product_ids
    ]
    return BusinessRuleViolation(
        "Not enough stock for some products.", error="insufficient_stock", errors={"items": short}
    )


def _create_order(
    user: User, catalog: dict[int, Product], wanted: dict[int, int], note: str, key: str | None
) -> Order:
    lines = [
        OrderLine(
            product=pid,
            sku=catalog[pid].sku,
            name=catalog[pid].name,
            unit_price=catalog[pid].price,
            quantity=qty,
            line_total=catalog[pid].price * qty,
        )  # fmt: skip
        for pid, qty in wanted.items()
    ]
    total = sum((line.line_total for line in lines), Decimal("0.00"))
    currency = next(iter(catalog.values())).currency
    order = Order.create(user=user, total=total, currency=currency, note=note, idempotency_key=key)
    for line in lines:
        line.order = order
    OrderLine.bulk_create(lines)
    order.lines = lines  # as prefetch() sets it: the event and the response need no query
    order.payment = None  # not paid yet
    return order


def _transition(
    order: Order, status: str, *, actor: User | None, client: ClientInfo | None
) -> Order:
    if status not in ORDER_TRANSITIONS[order.status]:
        raise Conflict(
            f"An order cannot go from {order.status} to {status}.", error="invalid_transition"
        )
    with db.atomic():
        moved = (
            Order.update(status=status, updated_at=utcnow())
            .where((Order.id == order.id) & (Order.status == order.status))
            .execute()
        )
        if moved != 1:  # a concurrent change won; judge against the new state
            raise Conflict("The order changed meanwhile; reload it.", error="invalid_transition")
        changed_after_commit(order.id)
        if status == "cancelled":
            products.stock_changed(_return_stock(order))
        order = with_payment().where(Order.id == order.id).get()
        _announce(order, "order.status_changed")
        notifications.notify(
            user_id=order.user_id,
            kind="order.status_changed",
            title=STATUS_TITLES[status],
            body=f"Order #{order.id} is now {status}.",
            data={"order_id": order.id, "status": status},
        )
        if actor is not None and client is not None and is_admin(actor):
            audit.record(
                "order.status_changed", client=client, actor=actor, target_type="order",
                target_id=order.id, data={"to": status},
            )  # fmt: skip
    return order


def _return_stock(order: Order) -> list[Product]:
    now = utcnow()
    lines = list(OrderLine.select().where(OrderLine.order == order.id))
    for line in lines:
        Product.update(stock=Product.stock + line.quantity, updated_at=now).where(
            Product.id == line.product_id
        ).execute()
    return list(Product.select().where(Product.id.in_([line.product_id for line in lines])))


def _announce(order: Order, event: str) -> None:
    """Publish `event` with the order as GET /orders/{id} returns it, to its owner and admins.

    Webhooks subscribed to `event` get the same data, recorded in the same transaction.
    """
    payload = _SCHEMA.dump(order)
    publish_after_commit(user_channel(order.user_id), event, payload)
    publish_after_commit(ADMIN, event, payload)
    webhooks.record_event(event_type=event, data=payload)
