"""The top bar: where to go, the cart count, the unread badge, who is signed in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft
from flet_backend_client import User

Go = Callable[[str], Awaitable[None]]


class NavBar:
    """Buttons for each screen; texts are refreshed by `update_counts`."""

    def __init__(self, go: Go, sign_out: Callable[[], Awaitable[None]]) -> None:
        self.go = go
        self._sign_out = sign_out
        self.cart = self._button("Cart", ft.Icons.SHOPPING_CART, "cart")
        self.notifications = self._button("Notifications", ft.Icons.NOTIFICATIONS, "notifications")
        self.importer = self._button("Import", ft.Icons.UPLOAD_FILE, "import")
        self.who = ft.Text()
        self.control = ft.Row(
            [self._button("Products", ft.Icons.STOREFRONT, "products"), self.cart,
             self._button("My orders", ft.Icons.RECEIPT_LONG, "orders"), self.notifications,
             self.importer, self.who,
             ft.TextButton("Sign out", icon=ft.Icons.LOGOUT, on_click=self.sign_out)],
            wrap=True, visible=False,
        )  # fmt: skip

    def _button(self, text: str, icon: ft.IconData, target: str) -> ft.TextButton:
        async def click(_event: ft.Event[ft.TextButton]) -> None:
            await self.go(target)

        return ft.TextButton(text, icon=icon, on_click=click)

    async def sign_out(self, _event: ft.Event[ft.TextButton]) -> None:
        """Sign out (the shell goes back to the sign-in screen)."""
        await self._sign_out()

    def signed_in(self, user: User | None) -> None:
        """Show the bar for `user` (admins also get "Import"), or hide it."""
        self.control.visible = user is not None
        self.importer.visible = user is not None and user.role == "admin"
        self.who.value = f"Signed in as {user.email}" if user else ""

    def update_counts(self, cart_items: int, unread: int) -> None:
        """Show how many items are in the cart and how many notifications are unread."""
        self.cart.content = f"Cart ({cart_items})"
        self.notifications.content = f"Notifications: {unread}"
        self.notifications.badge = ft.Badge(label=str(unread)) if unread else None
