"""The catalog: listing with filters, reads, admin writes with events.

Every write tells `backend.cache` after it commits that the catalog changed
(`cache.invalidate(CACHE_NAMESPACE)`), for whoever keeps copies of it (the
optimisation layer's catalog cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

from peewee import IntegrityError

from backend import cache
from backend.channels import ADMIN, PRODUCTS
from backend.db import db
from backend.errors import Conflict, NotFound, PreconditionFailed
from backend.events import publish_after_commit
from backend.models import OrderLine, Product, User, utcnow
from backend.schemas.catalog import SORT_FIELDS, ProductSchema
from backend.services import audit, files, webhooks
from backend.services.access import is_admin, require_role
from backend.services.audit import ClientInfo

CACHE_NAMESPACE = "catalog"
SORTS = {  # the names ProductQuerySchema accepts, each with its ORDER BY
    **{name: getattr(Product, name).asc() for name in SORT_FIELDS},
    **{f"-{name}": getattr(Product, name).desc() for name in SORT_FIELDS},
}
WRITABLE = (
    "sku",
    "name",
    "description",
    "price",
    "currency",
    "stock",
    "is_active",
    "image_file_id",
)


@dataclass(frozen=True)
class ProductFilter:
    """What a catalog page asks for."""

    q: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
    sort: str = "name"
    page: int = 1
    page_size: int = 20


_SCHEMA = ProductSchema()  # one instance: building a schema costs more than a dump


def product_payload(product: Product) -> dict[str, Any]:
    """Return the data of a `product.*` event: the product as GET /products/{id} returns it."""
    return _SCHEMA.dump(product)


def list_products(*, viewer: User | None, filters: ProductFilter) -> tuple[list[Product], int]:
    """Return one page of the catalog and the total count.

    Non-admins (and anonymous callers) see active products only.
    """
    return _query_page(filters, include_inactive=viewer is not None and is_admin(viewer))


def get_product(*, viewer: User | None, product_id: int) -> Product:
    """Return a product; inactive ones only to admins. Raises `NotFound`."""
    product = Product.get_or_none(Product.id == product_id)
    if product is None or not (product.is_active or (viewer is not None and is_admin(viewer))):
        raise NotFound(f"Product {product_id} not found.")
    return product


def create_product(*, actor: User, data: dict[str, Any], client: ClientInfo) -> Product:
    """Add a product (admin). Raises `Conflict` (`sku_taken`) for a duplicate sku."""
    require_role(actor, "admin")
    try:
        with db.atomic():
            _claim_image(actor, data)
            product = Product.create(**{k: v for k, v in data.items() if k in WRITABLE})
            _after_write(product, "product.created", was_visible=False, actor=actor, client=client)
    except IntegrityError as exc:
        raise Conflict(f"SKU {data.get('sku')!r} is already used.", error="sku_taken") from exc
    return product


def _claim_image(actor: User, values: dict[str, Any]) -> None:
    # The image becomes public with the product (see services.files).
    if values.get("image_file_id") is not None:
        files.claim_for_product(actor=actor, file_id=values["image_file_id"])


def update_product(
    *,
    actor: User,
    product_id: int,
    expected_updated_at: datetime,
    changes: dict[str, Any],
    client: ClientInfo,
) -> Product:
    """Change a product (admin) if nobody changed it since `expected_updated_at`.

    Raises `NotFound`, `PreconditionFailed` (a concurrent write won) or
    `Conflict` (`sku_taken`).
    """
    require_role(actor, "admin")
    values = {k: v for k, v in changes.items() if k in WRITABLE}
    now = utcnow()
    try:
        with db.atomic():
            _claim_image(actor, values)
            was_visible = bool(
                Product.select(Product.is_active).where(Product.id == product_id).scalar()
            )
            updated = (
                Product.update(**values, updated_at=now)
                .where((Product.id == product_id) & (Product.updated_at == expected_updated_at))
                .execute()
            )
            if updated != 1:
                _raise_missing_or_stale(product_id)
            product = Product.get_by_id(product_id)
            _after_write(
                product, "product.updated", was_visible=was_visible, actor=actor, client=client
            )
    except IntegrityError as exc:
        raise Conflict(f"SKU {values.get('sku')!r} is already used.", error="sku_taken") from exc
    return product


def delete_product(
    *, actor: User, product_id: int, expected_updated_at: datetime, client: ClientInfo
) -> bool:
    """Delete a product (admin): soft (deactivate) if it was ever ordered, else for good.

    Returns whether the deletion was soft. Raises `NotFound` or `PreconditionFailed`.
    """
    require_role(actor, "admin")
    with db.atomic():
        product = Product.get_or_none(Product.id == product_id)
        if product is None or product.updated_at != expected_updated_at:
            _raise_missing_or_stale(product_id)
        was_visible = product.is_active
        soft = OrderLine.select().where(OrderLine.product == product_id).exists()
        if soft:
            product.is_active = False
            product.save()
        else:
            product.delete_instance()
        _after_write(
            product, "product.deleted", was_visible=was_visible, actor=actor, client=client
        )
    return soft


def announce(product: Product, event: str, *, was_visible: bool) -> None:
    """Publish a `product.*` event once the current transaction commits, to whom may see it.

    `admin` gets every event. The public `products` topic gets it only while the
    product is active, as GET /products/{id} would show it; when a product stops
    being visible (`was_visible`, now inactive) the topic gets `product.deleted`
    with its id alone, so clients drop it, and nothing after that. Webhooks
    subscribed to `event` get what `admin` gets, recorded in the same transaction.
    """
    payload = product_payload(product)
    publish_after_commit(ADMIN, event, payload)
    webhooks.record_event(event_type=event, data=payload)
    if product.is_active:
        publish_after_commit(PRODUCTS, event, payload)
    elif was_visible:
        publish_after_commit(PRODUCTS, "product.deleted", {"id": product.id})


def stock_changed(products: list[Product]) -> None:
    """Announce new stock levels after the current transaction commits (orders call this)."""
    for product in products:
        announce(product, "product.updated", was_visible=product.is_active)
    db.after_commit(lambda: cache.invalidate(CACHE_NAMESPACE))


def _after_write(
    product: Product, event: str, *, was_visible: bool, actor: User, client: ClientInfo
) -> None:
    audit.record(
        event, client=client, actor=actor, target_type="product", target_id=product.id,
        data={"sku": product.sku},
    )  # fmt: skip
    announce(product, event, was_visible=was_visible)
    db.after_commit(lambda: cache.invalidate(CACHE_NAMESPACE))


def _raise_missing_or_stale(product_id: int) -> NoReturn:
    if Product.select().where(Product.id == product_id).exists():
        raise PreconditionFailed("The product changed since you read it; reload and retry.")
    raise NotFound(f"Product {product_id} not found.")


def _query_page(filters: ProductFilter, *, include_inactive: bool) -> tuple[list[Product], int]:
    query = Product.select()
    if not include_inactive:
        query = query.where(Product.is_active == True)  # noqa: E712 - SQL comparison
    if filters.q:
        term = filters.q
        query = query.where(
            Product.name.contains(term) | Product.sku.contains(term)
            | Product.description.contains(term)
        )  # fmt: skip
    if filters.min_price is not None:
        query = query.where(Product.price >= filters.min_price)
    if filters.max_price is not None:
        query = query.where(Product.price <= filters.max_price)
    if filters.in_stock is not None:
        query = query.where(Product.stock > 0 if filters.in_stock else Product.stock == 0)
    total = query.count()
    ordered = query.order_by(SORTS[filters.sort], Product.id.asc())
    return list(ordered.paginate(filters.page, filters.page_size)), total


DEMO_CATALOG = [
    ("Tea", ["Green", "Black", "Oolong", "White", "Earl Grey", "Chai", "Mint", "Rooibos"], "4.50"),
    ("Coffee", ["Espresso", "Colombia", "Ethiopia", "Decaf", "House blend", "Kenya"], "11.90"),
    ("Mug", ["Classic", "Travel", "Enamel", "Glass", "Stoneware", "Espresso cup"], "8.00"),
    ("Kettle", ["Electric", "Gooseneck", "Stovetop"], "39.00"),
    ("Brewer", ["French press", "Pour-over", "Moka pot", "Cold brew jar", "Aeropress"], "24.50"),
]


def seed_demo_catalog() -> int:
    """Create the demo catalog (a few dozen products) if absent; return how many were added."""
    added = 0
    with db.atomic():
        for family, variants, price in DEMO_CATALOG:
            for number, variant in enumerate(variants, start=1):
                sku = f"{family[:3].upper()}-{number:03d}"
                _, created = Product.get_or_create(
                    sku=sku,
                    defaults={
                        "name": f"{variant} {family.lower()}",
                        "description": f"Our {variant.lower()} {family.lower()}.",
                        "price": Decimal(price) + number,
                        "stock": 10 * number,
                    },
                )
                added += int(created)
    if added:
        db.after_commit(lambda: cache.invalidate(CACHE_NAMESPACE))
    return added
