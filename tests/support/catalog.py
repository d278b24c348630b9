"""Helpers for catalog and order tests."""

from __future__ import annotations

from decimal import Decimal

from backend.models import Product


def make_product(
    sku: str, *, price: str = "10.00", stock: int = 10, active: bool = True, **extra: object
) -> Product:
    """Create a product directly."""
    return Product.create(
        sku=sku, name=extra.pop("name", f"Product {sku}"), price=Decimal(price), stock=stock,
        is_active=active, **extra,
    )  # fmt: skip
