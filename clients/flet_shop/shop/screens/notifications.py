"""Unread notifications (order status changes, finished jobs, ...)."""

from __future__ import annotations

import flet as ft
from flet_backend_client import Event, Notification

from shop.screens.base import Screen, heading
from shop.texts import error_message


def notification_tile(notification: Notification) -> ft.Control:
    """One notification: its title and body."""
    return ft.ListTile(
        leading=ft.Icon(ft.Icons.NOTIFICATIONS),
        title=ft.Text(notification.title),
        subtitle=ft.Text(notification.body) if notification.body else None,
    )


class NotificationsScreen(Screen):
    """The unread notifications; new ones appear live at the top."""

    title = "Notifications"

    def build(self) -> ft.Control:
        """Return the list and the "Mark all read" button."""
        self.list = ft.Column(spacing=0, scroll=ft.ScrollMode.AUTO, expand=True)
        self.mark = ft.Button("Mark all read", icon=ft.Icons.DONE_ALL, on_click=self.mark_all)
        return ft.Column([heading("Notifications"), self.mark, self.list], expand=True)

    async def load(self) -> None:
        """Fetch the unread notifications."""
        try:
            found = await self.shop.client.list_notifications(unread=True)
        except Exception as exc:  # shown to the user, the screen stays usable
            self.shop.notify(error_message(exc), error=True)
            return
        self.list.controls = [notification_tile(n) for n in found.items]
        self.shop.set_unread(found.total)
        self._empty_state()

    def _empty_state(self) -> None:
        if not self.list.controls:
            self.list.controls = [ft.Text("No unread notifications.")]
        self.mark.disabled = self.shop.unread == 0

    def on_event(self, event: Event) -> bool:
        """Put a new notification at the top."""
        notification = event.resource
        if not isinstance(notification, Notification):
            return False
        if self.shop.unread == 1:  # the first one replaces the "No unread" text
            self.list.controls = []
        self.list.controls.insert(0, notification_tile(notification))
        self.mark.disabled = False
        return True

    async def mark_all(self, _event: ft.Event[ft.Button]) -> None:
        """Mark every notification read."""
        try:
            await self.shop.client.mark_all_notifications_read()
        except Exception as exc:  # shown to the user
            self.shop.notify(error_message(exc), error=True)
            return
        self.list.controls = []
        self.shop.set_unread(0)
        self._empty_state()
        self.shop.page.update()
