"""The cart and placing the order."""

from __future__ import annotations

import flet as ft
from flet_backend_client import InsufficientStockError

from shop.cart import CartLine
from shop.screens.base import Screen, heading
from shop.texts import error_message, money, shortage_message


class CartScreen(Screen):
    """What is in the cart; "Place order" sends it."""

    title = "Cart"

    def build(self) -> ft.Control:
        """Return the lines, the total and the order button."""
        self.lines = ft.Column(spacing=4)
        self.total = ft.Text(size=16, weight=ft.FontWeight.BOLD)
        self.note = ft.TextField(label="Note for the order (optional)", max_length=500)
        self.place = ft.Button("Place order", icon=ft.Icons.SHOPPING_BAG, on_click=self.place_order)
        self.message = ft.Text()
        self.redraw()
        return ft.Column(
            [heading("Cart"), self.lines, self.total, self.note, self.place, self.message],
            spacing=12, scroll=ft.ScrollMode.AUTO, expand=True,
        )  # fmt: skip

    def redraw(self) -> None:
        """Show the cart's current lines."""
        cart = self.shop.cart
        self.lines.controls = [self._line(line) for line in cart.lines.values()]
        if not cart.lines:
            self.lines.controls = [ft.Text("Your cart is empty.")]
        currency = next((line.product.currency for line in cart.lines.values()), "")
        self.total.value = f"Total: {money(cart.total, currency)}" if cart.lines else ""
        self.place.disabled = not cart.lines

    def _line(self, line: CartLine) -> ft.Control:
        product = line.product

        async def remove(_event: ft.Event[ft.TextButton]) -> None:
            self.shop.cart.remove(product.id)
            self.redraw()
            self.shop.refresh_nav()

        return ft.Row(
            [ft.Text(f"{line.quantity} × {product.name}", expand=True),
             ft.Text(money(line.total, product.currency)),
             ft.TextButton("Remove", on_click=remove)],
        )  # fmt: skip

    async def place_order(self, _event: ft.Event[ft.Button]) -> None:
        """Order what is in the cart; explain a shortage clearly."""
        cart = self.shop.cart
        names = {pid: line.product.name for pid, line in cart.lines.items()}
        self.place.disabled = True
        self.message.value = "Placing the order…"
        self.shop.page.update()
        try:
            order = await self.shop.client.place_order(
                items=cart.items(), note=(self.note.value or "").strip() or None
            )
        except InsufficientStockError as exc:
            self._fail(shortage_message(exc, names))
        except Exception as exc:  # ApiError, or the server is unreachable
            self._fail(f"The order was not placed: {error_message(exc)}")
        else:
            cart.clear()
            self.note.value = ""
            self.message.value = f"Order #{order.id} placed: {money(order.total, order.currency)}."
            self.message.color = None
            self.redraw()
        self.shop.refresh_nav()

    def _fail(self, text: str) -> None:
        self.message.value = text
        self.message.color = ft.Colors.ERROR
        self.place.disabled = not self.shop.cart.lines
