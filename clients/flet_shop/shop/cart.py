"""The shopping cart: product lines kept in memory for the session."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from flet_backend_client import Product


@dataclass
class CartLine:
    """A product and how many of it."""

    product: Product
    quantity: int

    @property
    def total(self) -> Decimal:
        """Price times quantity."""
        return self.product.price * self.quantity


@dataclass
class Cart:
    """Lines by product id, in the order they were first added."""

    lines: dict[int, CartLine] = field(default_factory=dict)

    def add(self, product: Product, quantity: int = 1) -> None:
        """Add `quantity` of `product` (merging with a line already there)."""
        line = self.lines.get(product.id)
        if line is None:
            self.lines[product.id] = CartLine(product, quantity)
        else:
            line.quantity += quantity

    def remove(self, product_id: int) -> None:
        """Drop the line for `product_id`, if any."""
        self.lines.pop(product_id, None)

    def clear(self) -> None:
        """Empty the cart."""
        self.lines.clear()

    def refresh(self, product: Product) -> None:
        """Replace a line's product with a newer copy (live price and stock)."""
        line = self.lines.get(product.id)
        if line is not None:
            line.product = product

    @property
    def count(self) -> int:
        """How many items in all."""
        return sum(line.quantity for line in self.lines.values())

    @property
    def total(self) -> Decimal:
        """The sum of the lines (one currency assumed, as the demo catalog has)."""
        return sum((line.total for line in self.lines.values()), Decimal("0"))

    def items(self) -> list[tuple[int, int]]:
        """The `(product_id, quantity)` pairs `place_order` takes."""
        return [(pid, line.quantity) for pid, line in self.lines.items()]
