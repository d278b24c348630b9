"""The app shell: signs in, switches screens, follows live events for the session."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

import flet as ft
from flet_backend_client import AsyncClient, Event, Product, User

from shop.cart import Cart
from shop.config import Settings, load_settings
from shop.live import follow_events
from shop.nav import NavBar
from shop.screens.admin_import import ImportScreen
from shop.screens.base import Screen
from shop.screens.cart import CartScreen
from shop.screens.login import LoginScreen
from shop.screens.notifications import NotificationsScreen
from shop.screens.orders import OrdersScreen
from shop.screens.products import ProductsScreen
from shop.token_store import PrefsTokenStore
from shop.uploads import PickerUploads

log = logging.getLogger(__name__)
SCREENS: dict[str, type[Screen]] = {
    "products": ProductsScreen,
    "cart": CartScreen,
    "orders": OrdersScreen,
    "notifications": NotificationsScreen,
    "import": ImportScreen,
}


class Shop:
    """One user's session of the app: the client, the cart and what is on screen."""

    def __init__(self, page: ft.Page, client: AsyncClient, settings: Settings) -> None:
        self.page = page
        self.client = client
        self.settings = settings
        self.cart = Cart()
        self.user: User | None = None
        self.unread = 0
        self.screen: Screen | None = None
        self.live: Future[None] | None = None
        self.file_picker = ft.FilePicker()  # a service: one per session, kept referenced
        self.uploads = PickerUploads(self.file_picker, client)
        self.nav = NavBar(self.open, self.sign_out)
        self.status = ft.Text()
        self.body = ft.Container(expand=True)
        page.add(ft.Column([self.nav.control, self.status, self.body], expand=True))

    async def start(self) -> None:
        """Resume a saved session, or show the sign-in screen."""
        if await self.client.restore():
            try:
                user = await self.client.me()
            except Exception:  # expired for good, revoked, or the server is down
                log.info("saved session not usable; signing in again", exc_info=True)
            else:
                await self.signed_in(user)
                return
        await self.show(LoginScreen(self))

    async def signed_in(self, user: User) -> None:
        """Set the session up for `user`: the top bar, the unread count, live events."""
        self.user = user
        self.nav.signed_in(user)
        await self.count_unread()
        self.live = self.page.run_task(follow_events, self.client, self.on_event, ["products"])
        await self.open("products")

    async def count_unread(self) -> None:
        """Fetch the number of unread notifications for the badge."""
        try:
            self.unread = (await self.client.list_notifications(unread=True, page_size=1)).total
        except Exception:  # the badge is not worth failing for
            log.warning("could not count notifications", exc_info=True)

    async def sign_out(self) -> None:
        """End the session on the server and here; back to the sign-in screen."""
        self.stop_live()
        try:
            await self.client.logout()
        except Exception:  # the local tokens are gone either way
            log.warning("logout request failed", exc_info=True)
        self.user, self.unread = None, 0
        self.cart.clear()
        self.nav.signed_in(None)
        await self.show(LoginScreen(self))
        self.notify("Signed out.")

    def stop_live(self) -> None:
        """Stop following live events."""
        if self.live is not None:
            self.live.cancel()
            self.live = None

    async def open(self, name: str) -> None:
        """Show the screen called `name` (`products`, `cart`, `orders`, ...)."""
        await self.show(SCREENS[name](self))

    async def show(self, screen: Screen) -> None:
        """Put `screen` in the body, load its data and draw."""
        self.screen = screen
        self.page.title = f"Flet Shop · {screen.title}"
        self.body.content = screen.view
        self.status.value = ""  # messages belong to the screen they were shown on
        self.refresh_nav()
        await screen.load()
        self.page.update()

    def notify(self, text: str, error: bool = False) -> None:
        """Show a one-line message above the screen."""
        self.status.value = text
        self.status.color = ft.Colors.ERROR if error else ft.Colors.PRIMARY
        self.refresh_nav()

    def set_unread(self, count: int) -> None:
        """Set the unread notifications count shown on the badge."""
        self.unread = max(count, 0)
        self.refresh_nav()

    def refresh_nav(self) -> None:
        """Redraw the cart count and the badge."""
        self.nav.update_counts(self.cart.count, self.unread)
        self.page.update()

    async def on_event(self, event: Event) -> None:
        """Apply one live event to the session and the screen on show."""
        if isinstance(event.resource, Product):  # the whole product, as a GET returns it
            self.cart.refresh(event.resource)
        elif event.type == "notification.created":
            self.unread += 1
        elif event.type == "stream.reset":  # events were missed: refetch
            await self.count_unread()
            if self.screen is not None:
                await self.screen.load()
        if self.screen is not None:
            self.screen.on_event(event)
        self.refresh_nav()

    async def on_resize(self, _event: ft.PageResizeEvent) -> None:
        """Let the screen adapt to the new window size (e.g. swap image renditions)."""
        if self.screen is not None and self.screen.on_resize():
            self.page.update()

    async def close(self) -> None:
        """Release the session's resources when the page goes away."""
        self.stop_live()
        await asyncio.shield(self.client.aclose())


async def main(page: ft.Page) -> None:
    """The Flet entry point: one call per app session (window, browser tab, device).

    Args:
        page: The session's page.
    """
    settings = load_settings()
    page.title = "Flet Shop"
    page.padding = 16
    prefs = ft.SharedPreferences()  # a service: keep the reference for the session
    client = AsyncClient(settings.api_base, token_store=PrefsTokenStore(prefs))
    shop = Shop(page, client, settings)
    page.on_resize = shop.on_resize

    async def closed(_event: ft.Event[ft.Page]) -> None:
        await shop.close()

    page.on_close = closed
    await shop.start()
