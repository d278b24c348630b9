"""The catalog: listing with filters, reads through a Redis cache, admin writes with events."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import redis
from peewee import IntegrityError

from backend import cache
from backend.db import db
from backend.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from backend.events import publish_after_commit
from backend.models import Job, OrderLine, Product, User, utcnow
from backend.services import audit, files, job_tracking
from backend.services.access import is_admin, require_role
from backend.services.audit import ClientInfo

CACHE_NAMESPACE = "catalog"
TOPIC = "products"
SORTS = {
    "name": Product.name.asc(),
    "-name": Product.name.desc(),
    "price": Product.price.asc(),
    "-price": Product.price.desc(),
    "created_at": Product.created_at.asc(),
    "-created_at": Product.created_at.desc(),
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


def product_payload(product: Product) -> dict[str, Any]:
    """The product as carried by `product.*` events (money as a decimal string)."""
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "price": str(product.price),
        "currency": product.currency,
        "stock": product.stock,
        "is_active": product.is_active,
        "image_file_id": product.image_file_id,
        "updated_at": product.updated_at.isoformat(),
    }


def list_products(*, viewer: User | None, filters: ProductFilter) -> tuple[list[Product], int]:
    """Return one page of the catalog and the total count (cached until the catalog changes).

    Non-admins (and anonymous callers) see active products only.
    """
    admin = viewer is not None and is_admin(viewer)
    digest = hashlib.sha256(json.dumps(asdict(filters), default=str).encode()).hexdigest()[:32]
    page = cache.cached(
        CACHE_NAMESPACE,
        f"list:{'admin' if admin else 'public'}:{digest}",
        lambda: _encode_page(*_query_page(filters, include_inactive=admin)),
    )
    return [_decode(row) for row in page["items"]], int(page["total"])


def get_product(*, viewer: User | None, product_id: int) -> Product:
    """Return a product; inactive ones only to admins. Raises `NotFound`."""
    row = cache.cached(CACHE_NAMESPACE, f"product:{product_id}", lambda: _encode_one(product_id))
    product = _decode(row) if row is not None else None
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
            _after_write(product, "product.created", actor=actor, client=client)
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
            updated = (
                Product.update(**values, updated_at=now)
                .where((Product.id == product_id) & (Product.updated_at == expected_updated_at))
                .execute()
            )
            if updated != 1:
                _raise_missing_or_stale(product_id)
            product = Product.get_by_id(product_id)
            _after_write(product, "product.updated", actor=actor, client=client)
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
        soft = OrderLine.select().where(OrderLine.product == product_id).exists()
        if soft:
            product.is_active = False
            product.save()
        else:
            product.delete_instance()
        _after_write(product, "product.deleted", actor=actor, client=client)
    return soft


def start_import(*, actor: User, csv_path: Path) -> Job:
    """Check a spooled CSV's header and start importing it in the background (admin).

    Raises `Forbidden`, or `ValidationFailed` (`invalid_csv`) for a file that
    is empty, not UTF-8 text, or has the wrong columns; the file is then
    deleted.
    """
    from backend.services.product_import import check_header

    require_role(actor, "admin")
    try:
        check_header(csv_path)
    except ValidationFailed:
        csv_path.unlink(missing_ok=True)
        raise
    try:
        return job_tracking.submit(
            owner=actor, kind="products.import", func="jobs.products.import_products",
            args=(str(csv_path),),
        )  # fmt: skip
    except redis.RedisError:
        csv_path.unlink(missing_ok=True)
        raise


def stock_changed(products: list[Product]) -> None:
    """Announce new stock levels after the current transaction commits (orders call this)."""
    for product in products:
        publish_after_commit(TOPIC, "product.updated", product_payload(product))
    db.after_commit(lambda: cache.invalidate(CACHE_NAMESPACE))


def _after_write(product: Product, event: str, *, actor: User, client: ClientInfo) -> None:
    audit.record(
        event, client=client, actor=actor, target_type="product", target_id=product.id,
        data={"sku": product.sku},
    )  # fmt: skip
    publish_after_commit(TOPIC, event, product_payload(product))
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


def _encode(product: Product) -> dict[str, Any]:
    # Stored in the database's own representation, so decoding is exact.
    return {
        name: field.db_value(getattr(product, name)) for name, field in Product._meta.fields.items()
    }


def _decode(row: dict[str, Any]) -> Product:
    fields = Product._meta.fields
    return Product(**{name: fields[name].python_value(value) for name, value in row.items()})


def _encode_page(items: list[Product], total: int) -> dict[str, Any]:
    return {"items": [_encode(p) for p in items], "total": total}


def _encode_one(product_id: int) -> dict[str, Any] | None:
    product = Product.get_or_none(Product.id == product_id)
    return _encode(product) if product is not None else None


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
