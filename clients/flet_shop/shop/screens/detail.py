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
        user = self.shop.user
        self.upload_image = ft.OutlinedButton(
            "Upload image", icon=ft.Icons.IMAGE, on_click=self.choose_image,
            visible=user is not None and user.is_admin,
        )  # fmt: skip
        self.upload_bar = ft.ProgressBar(value=0, visible=False, width=480)
        self.upload_text = ft.Text()
        self.show(self.product)
        return ft.Column(
            [ft.TextButton("Back to products", icon=ft.Icons.ARROW_BACK, on_click=self.back),
             self.name, self.image_box, self.meta, self.stock, self.description,
             ft.Row([self.quantity, self.add]), self.upload_image, self.upload_bar,
             self.upload_text],
            spacing=12, scroll=ft.ScrollMode.AUTO, expand=True,
        )  # fmt: skip

    async def choose_image(self, _event: ft.Event[ft.OutlinedButton]) -> None:
        """Admin: pick an image, send it with the picker to an upload URL, attach it."""
        files = await self.shop.file_picker.pick_files(
            dialog_title="Choose an image", file_type=ft.FilePickerFileType.IMAGE
        )
        if not files:
            return
        picked, client = files[0], self.shop.client
        self.upload_image.disabled = True
        self.show_upload(0.0)
        try:
            target = await client.upload_url(picked.name, size=picked.size, purpose="product_image")
            sent = await self.shop.uploads.send(picked, target, self.show_upload)
            if sent.file is None:
                raise RuntimeError("the upload stored no file")
            product = await client.update_product(self.product.id, image_file_id=sent.file.id)
        except Exception as exc:  # refused (413/415), the picker failed, or the server
            self.upload_text.value = f"Upload failed: {error_message(exc)}"
        else:
            self.upload_text.value = f"Image uploaded: {sent.file.filename}"
            self.show(product)
            self.shop.page.run_task(self._load_image)
        finally:
            self.upload_image.disabled = False
            self.upload_bar.visible = False
        self.shop.page.update()

    def show_upload(self, fraction: float) -> None:
        """Move the upload bar (0.0 to 1.0)."""
        self.upload_bar.visible = True
        self.upload_bar.value = fraction
        self.upload_text.value = f"Uploading {int(fraction * 100)}%"
        self.shop.page.update()

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
