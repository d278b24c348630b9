"""The catalog: search, pages, and stock that changes live."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import flet as ft
from flet_backend_client import Event, Product

from shop.screens.base import Screen, heading
from shop.texts import error_message, money, stock_label

if TYPE_CHECKING:
    from shop.app import Shop


class ProductRow:
    """One product in the list; its texts are updated in place by live events."""

    def __init__(self, shop: Shop, product: Product) -> None:
        self.shop = shop
        self.product = product
        self.name = ft.Text(weight=ft.FontWeight.BOLD)
        self.meta = ft.Text()
        self.stock = ft.Text()
        self.add = ft.Button("Add to cart", icon=ft.Icons.ADD_SHOPPING_CART, on_click=self.add_one)
        details = ft.TextButton("Details", on_click=self.open)
        self.control = ft.Card(
            ft.Container(
                ft.Row(
                    [ft.Column([self.name, self.meta], expand=True, spacing=2), self.stock,
                     details, self.add],
                    spacing=16,
                ),
                padding=12,
            )
        )  # fmt: skip
        self.show(product)

    def show(self, product: Product) -> None:
        """Display `product` (a newer copy of the same one)."""
        self.product = product
        self.name.value = product.name
        self.meta.value = f"{product.sku} · {money(product.price, product.currency)}"
        self.stock.value = stock_label(product.stock)
        self.add.disabled = product.stock <= 0 or not product.is_active

    async def add_one(self, _event: ft.Event[ft.Button]) -> None:
        """Put one of this product in the cart."""
        self.shop.cart.add(self.product)
        self.shop.notify(f"Added {self.product.name} to the cart.")

    async def open(self, _event: ft.Event[ft.TextButton]) -> None:
        """Show this product's details."""
        from shop.screens.detail import ProductDetailScreen

        await self.shop.show(ProductDetailScreen(self.shop, self.product))


class ProductsScreen(Screen):
    """Products matching the search, one page at a time."""

    title = "Products"

    def build(self) -> ft.Control:
        """Return the search bar, the list and the pager."""
        self.page_number = 1
        self.rows: dict[int, ProductRow] = {}
        self.search = ft.TextField(
            label="Search products", prefix_icon=ft.Icons.SEARCH, on_submit=self.run_search,
            expand=True,
        )  # fmt: skip
        self.summary = ft.Text()
        self.list = ft.Column(spacing=4, scroll=ft.ScrollMode.AUTO, expand=True)
        self.previous = ft.TextButton("Previous page", on_click=self.go_previous)
        self.next = ft.TextButton("Next page", on_click=self.go_next)
        return ft.Column(
            [heading("Products"),
             ft.Row([self.search, ft.Button("Search", on_click=self.run_search)]),
             ft.Row([self.summary, self.previous, self.next]), self.list],
            expand=True,
        )  # fmt: skip

    async def load(self) -> None:
        """Fetch the current page of the search."""
        query = (self.search.value or "").strip() or None
        try:
            found = await self.shop.client.list_products(
                q=query, page=self.page_number, page_size=self.shop.settings.page_size
            )
        except Exception as exc:  # shown to the user, the screen stays usable
            self.shop.notify(error_message(exc), error=True)
            return
        self.rows = {p.id: ProductRow(self.shop, p) for p in found.items}
        self.list.controls = [row.control for row in self.rows.values()]
        if not found.items:
            self.list.controls = [ft.Text("No products found.")]
        pages = max(found.total_pages, 1)
        noun = "product" if found.total == 1 else "products"
        self.summary.value = f"{found.total} {noun} · page {found.page} of {pages}"
        self.previous.disabled = found.page <= 1
        self.next.disabled = found.page >= pages

    async def run_search(self, _event: ft.Event[ft.TextField] | ft.Event[ft.Button]) -> None:
        """Search from the first page."""
        self.page_number = 1
        await self.reload()

    async def go_previous(self, _event: ft.Event[ft.TextButton]) -> None:
        """Show the previous page."""
        self.page_number = max(1, self.page_number - 1)
        await self.reload()

    async def go_next(self, _event: ft.Event[ft.TextButton]) -> None:
        """Show the next page."""
        self.page_number += 1
        await self.reload()

    async def reload(self) -> None:
        """Load and redraw."""
        await self.load()
        self.shop.page.update()

    def on_event(self, event: Event) -> bool:
        """Update a listed product's name, price and stock as it changes."""
        removed = self.rows.get(event.removed_id) if event.removed_id is not None else None
        if removed is not None:  # no longer offered: shown, but it cannot be added
            removed.show(replace(removed.product, is_active=False))
            return True
        product = event.resource
        if not isinstance(product, Product) or product.id not in self.rows:
            return False
        if event.type == "product.deleted":  # its last state; gone for good if hard-deleted
            product = replace(product, is_active=False)
        self.rows[product.id].show(product)
        return True
