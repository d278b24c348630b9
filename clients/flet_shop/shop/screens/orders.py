"""My orders, with statuses that change live."""

from __future__ import annotations

import flet as ft
from flet_backend_client import Event, Order

from shop.screens.base import Screen, heading
from shop.texts import error_message, money


class OrderRow:
    """One order; its status text follows `order.status_changed`."""

    def __init__(self, order: Order) -> None:
        self.title = ft.Text(weight=ft.FontWeight.BOLD)
        self.status = ft.Text()
        self.total = ft.Text()
        self.items = ft.Text()
        self.control = ft.Card(
            ft.Container(
                ft.Row([ft.Column([self.title, self.items], expand=True, spacing=2),
                        self.status, self.total], spacing=16),
                padding=12,
            )
        )  # fmt: skip
        self.show(order)

    def show(self, order: Order) -> None:
        """Display `order` (a newer copy of the same one)."""
        self.title.value = f"Order #{order.id}"
        self.status.value = f"Status: {order.status}"
        self.total.value = money(order.total, order.currency)
        self.items.value = "Items: " + ", ".join(
            f"{line.quantity} × {line.name}" for line in order.items
        )


class OrdersScreen(Screen):
    """The signed-in user's orders, newest first (admins see everyone's)."""

    title = "My orders"

    def build(self) -> ft.Control:
        """Return the list."""
        self.rows: dict[int, OrderRow] = {}
        self.count = 0
        self.summary = ft.Text()
        self.list = ft.Column(spacing=4, scroll=ft.ScrollMode.AUTO, expand=True)
        return ft.Column([heading("My orders"), self.summary, self.list], expand=True)

    async def load(self) -> None:
        """Fetch the first page of orders."""
        try:
            found = await self.shop.client.list_orders(page=1)
        except Exception as exc:  # shown to the user, the screen stays usable
            self.shop.notify(error_message(exc), error=True)
            return
        self.rows = {order.id: OrderRow(order) for order in found.items}
        self.count = found.total
        self._redraw()

    def _redraw(self) -> None:
        ordered = sorted(self.rows.items(), key=lambda item: item[0], reverse=True)
        self.list.controls = [row.control for _, row in ordered]
        plural = "order" if self.count == 1 else "orders"
        self.summary.value = f"{self.count} {plural}" if self.count else "No orders yet."

    def on_event(self, event: Event) -> bool:
        """Add new orders and follow status changes."""
        order = event.resource
        if not isinstance(order, Order):
            return False
        row = self.rows.get(order.id)
        if row is not None:
            row.show(order)
            return True
        self.rows[order.id] = OrderRow(order)
        self.count += 1
        self._redraw()
        return True
