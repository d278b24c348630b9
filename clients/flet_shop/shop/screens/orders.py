"""My orders, with statuses and payment states that change live, and paying a pending one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft
from flet_backend_client import Event, Order, Payment

from shop.screens.base import Screen, heading
from shop.texts import error_message, money, payment_label, payment_started

PAYABLE = frozenset({"failed", "cancelled"})  # a pending order's payment that needs the customer


class OrderRow:
    """One order; its status follows `order.status_changed`, its payment `payment.*`."""

    def __init__(self, order: Order, pay: Callable[[OrderRow], Awaitable[None]]) -> None:
        self.order = order
        self.title = ft.Text(weight=ft.FontWeight.BOLD)
        self.status = ft.Text()
        self.payment = ft.Text()
        self.total = ft.Text()
        self.items = ft.Text()

        async def clicked(_event: ft.Event[ft.Button]) -> None:
            await pay(self)

        self.pay_button = ft.Button("Pay", icon=ft.Icons.PAYMENT, on_click=clicked)
        self.control = ft.Card(
            ft.Container(
                ft.Row([ft.Column([self.title, self.items, self.payment], expand=True, spacing=2),
                        self.status, self.total, self.pay_button], spacing=16),
                padding=12,
            )
        )  # fmt: skip
        self.show(order)

    def show(self, order: Order) -> None:
        """Display `order` (a newer copy of the same one)."""
        self.order = order
        self.title.value = f"Order #{order.id}"
        self.status.value = f"Status: {order.status}"
        self.total.value = money(order.total, order.currency)
        self.items.value = "Items: " + ", ".join(
            f"{line.quantity} × {line.name}" for line in order.items
        )
        self.show_payment(order.payment)

    def show_payment(self, payment: Payment | None) -> None:
        """Display the order's payment state (None: not paid yet)."""
        self.payment.value = payment_label(payment)
        pending = self.order.status == "pending"
        self.pay_button.visible = pending and (payment is None or payment.status in PAYABLE)
        self.pay_button.disabled = False


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
        self.rows = {order.id: OrderRow(order, self.pay) for order in found.items}
        self.count = found.total
        self._redraw()

    async def pay(self, row: OrderRow) -> None:
        """Start paying the row's order; the provider's answer arrives as live events."""
        row.pay_button.disabled = True
        self.shop.page.update()
        try:
            payment = await self.shop.client.pay(row.order.id)
        except Exception as exc:  # explained, the button usable again
            row.pay_button.disabled = False
            self.shop.notify(error_message(exc), error=True)
            return
        row.show_payment(payment)
        self.shop.notify(payment_started(payment))

    def _redraw(self) -> None:
        ordered = sorted(self.rows.items(), key=lambda item: item[0], reverse=True)
        self.list.controls = [row.control for _, row in ordered]
        plural = "order" if self.count == 1 else "orders"
        self.summary.value = f"{self.count} {plural}" if self.count else "No orders yet."

    def on_event(self, event: Event) -> bool:
        """Add new orders, follow status changes and payments."""
        resource = event.resource
        if isinstance(resource, Payment):
            row = self.rows.get(resource.order_id)
            if row is None:
                return False
            row.show_payment(resource)
            return True
        if not isinstance(resource, Order):
            return False
        row = self.rows.get(resource.id)
        if row is not None:
            row.show(resource)
            return True
        self.rows[resource.id] = OrderRow(resource, self.pay)
        self.count += 1
        self._redraw()
        return True
