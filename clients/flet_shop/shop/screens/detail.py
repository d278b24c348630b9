"""One product: its image (sized for the window), description, live stock, add to cart."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import flet as ft
from flet_backend_client import Event, Product

from shop.config import image_variant
from shop.images import fetch_rendition_urls, image_label
from shop.screens.base import Screen, heading
from shop.texts import error_message, money, stock_label

if TYPE_CHECKING:
    from shop.app import Shop


class ProductDetailScreen(Screen):
    """A product's page."""

    title = "Product"

    def __init__(self, shop: Shop, product: Product) -> None:
        self.product = product
        self.image_urls: dict[str, str] = {}  # rendition -> content-addressed URL
        self.image_urls_of: int | None = None  # the file `image_urls` belong to
        super().__init__(shop)

    def build(self) -> ft.Control:
        """Return the product's page (filled in by `show`)."""
        self.name = heading("")
        self.meta = ft.Text()
        self.description = ft.Text()
        self.stock = ft.Text(size=16)
        self.image_box = ft.Container(width=480)
        self.quantity = ft.TextField(
            label="Quantity", value="1", width=120, keyboard_type=ft.KeyboardType.NUMBER
        )
        self.add = ft.Button(
            "Add to cart", icon=ft.Icons.ADD_SHOPPING_CART, on_click=self.add_to_cart
        )
        self.show(self.product)
        return ft.Column(
            [ft.TextButton("Back to products", icon=ft.Icons.ARROW_BACK, on_click=self.back),
             self.name, self.image_box, self.meta, self.stock, self.description,
             ft.Row([self.quantity, self.add])],
            spacing=12, scroll=ft.ScrollMode.AUTO, expand=True,
        )  # fmt: skip

    def show(self, product: Product) -> None:
        """Display `product`."""
        self.product = product
        self.name.value = product.name
        self.meta.value = f"{product.sku} · {money(product.price, product.currency)}"
        self.description.value = product.description
        self.stock.value = stock_label(product.stock)
        self.add.disabled = product.stock <= 0 or not product.is_active
        self._show_image()

    def _show_image(self) -> None:
        file_id = self.product.image_file_id
        if file_id is None:
            self.image_box.content = None
            self.image_box.visible = False
            return
        if file_id != self.image_urls_of:
            return  # its addresses are being fetched (`load`, `_load_image`): it shows then
        variant = image_variant(self.shop.page.width)
        # the content-addressed URL (cacheable for good) once the rendition is ready
        src = self.image_urls.get(variant) or self.shop.client.file_url(file_id, variant=variant)
        current = self.image_box.content
        self.image_box.visible = True
        if isinstance(current, ft.Image) and current.src == src:
            return  # unchanged: do not reload it
        self.image_box.content = ft.Image(
            src=src, fit=ft.BoxFit.CONTAIN,
            semantics_label=image_label(variant, self.product.name),
            error_content=ft.Text("Image not available"),
        )  # fmt: skip

    async def _fetch_image_urls(self) -> None:
        file_id = self.product.image_file_id
        if file_id is None or file_id == self.image_urls_of:
            return
        self.image_urls = await fetch_rendition_urls(self.shop.client, file_id)
        self.image_urls_of = file_id

    async def _load_image(self) -> None:
        """Show a product's new image once its addresses are known."""
        await self._fetch_image_urls()
        self._show_image()
        self.shop.page.update()

    async def load(self) -> None:
        """Fetch the latest copy of the product."""
        try:
            product = await self.shop.client.get_product(self.product.id)
        except Exception as exc:  # shown to the user, the last copy stays on screen
            self.shop.notify(error_message(exc), error=True)
            product = self.product
        self.product = product
        await self._fetch_image_urls()
        self.show(product)

    def on_event(self, event: Event) -> bool:
        """Follow live changes to this product."""
        if event.removed_id == self.product.id:  # no longer offered
            self.show(replace(self.product, is_active=False))
            return True
        product = event.resource
        if not isinstance(product, Product) or product.id != self.product.id:
            return False
        self.show(product)
        if self.product.image_file_id not in (None, self.image_urls_of):
            self.shop.page.run_task(self._load_image)  # a new image: fetch its addresses
        return True

    def on_resize(self) -> bool:
        """Switch between the mobile and desktop image as the window crosses the breakpoint."""
        if self.product.image_file_id is None:
            return False
        self._show_image()
        return True

    async def add_to_cart(self, _event: ft.Event[ft.Button]) -> None:
        """Add the quantity typed to the cart."""
        text = (self.quantity.value or "").strip()
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            self.shop.notify("Quantity must be a whole number from 1 to 1000.", error=True)
            return
        self.shop.cart.add(self.product, int(text))
        self.shop.notify(f"Added {text} × {self.product.name} to the cart.")

    async def back(self, _event: ft.Event[ft.TextButton]) -> None:
        """Return to the catalog."""
        await self.shop.open("products")
