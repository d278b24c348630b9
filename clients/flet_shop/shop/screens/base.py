"""What every screen has: a control tree, a loader and a hook for live events."""

from __future__ import annotations

from typing import TYPE_CHECKING

import flet as ft
from flet_backend_client import Event

if TYPE_CHECKING:
    from shop.app import Shop


class Screen:
    """A screen of the app, shown in the shell's body.

    Subclasses build their controls in `build()`, fetch data in `load()` and react to live
    events in `on_event()`.
    """

    title = ""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.view: ft.Control = self.build()

    def build(self) -> ft.Control:
        """Return the screen's root control."""
        raise NotImplementedError

    async def load(self) -> None:
        """Fetch what the screen shows (called when it is shown and after `stream.reset`)."""

    def on_event(self, event: Event) -> bool:
        """React to a live event; return True when something on screen changed."""
        del event
        return False

    def on_resize(self) -> bool:
        """React to a new window size; return True when something on screen changed."""
        return False


def heading(text: str) -> ft.Text:
    """A screen title."""
    return ft.Text(text, size=24, weight=ft.FontWeight.BOLD)
