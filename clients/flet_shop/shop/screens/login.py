"""Sign in: email and password, or with GitHub."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import flet as ft
from flet.auth.providers import GitHubOAuthProvider
from flet_backend_client import AuthError, User

from shop.config import GitHubApp
from shop.screens.base import Screen, heading
from shop.texts import error_message

log = logging.getLogger(__name__)


def github_provider(app: GitHubApp, app_url: str) -> GitHubOAuthProvider:
    """Flet's GitHub provider, on the configured endpoints, calling back to this app."""
    provider = GitHubOAuthProvider(app.client_id, app.client_secret, f"{app_url}/oauth_callback")
    provider.authorization_endpoint = app.authorize_url
    provider.token_endpoint = app.token_url
    return provider


async def open_in_browser(url: str) -> None:
    """Open `url` in the system browser (or a new tab on the web)."""
    await ft.UrlLauncher().launch_url(url)


class LoginScreen(Screen):
    """Email and password, or "Sign in with GitHub"; on success the shell shows the catalog.

    GitHub sign-in runs Flet's `page.login` in web mode when the app has a GitHub app
    (`SHOP_GITHUB_CLIENT_ID`), then trades the provider's access token for our tokens
    (`login_with_provider`). Elsewhere (packaged apps, no client secret in the app) the
    backend runs the sign-in: the browser opens its authorization URL and the app waits
    (`sign_in_with_provider`).
    """

    title = "Sign in"

    def build(self) -> ft.Control:
        """Return the form."""
        self.email = ft.TextField(
            label="Email", autofocus=True, keyboard_type=ft.KeyboardType.EMAIL,
            on_submit=self.submit, width=360,
        )  # fmt: skip
        self.password = ft.TextField(
            label="Password", password=True, can_reveal_password=True,
            on_submit=self.submit, width=360,
        )  # fmt: skip
        self.error = ft.Text("", color=ft.Colors.ERROR)
        self.button = ft.Button("Sign in", icon=ft.Icons.LOGIN, on_click=self.submit)
        self.github = ft.OutlinedButton(
            "Sign in with GitHub", icon=ft.Icons.CODE, on_click=self.sign_in_with_github,
            visible=False,
        )  # fmt: skip
        return ft.Column(
            [heading("Flet Shop"), ft.Text("Sign in to continue"), self.email, self.password,
             self.button, self.github, self.error],
            spacing=16,
        )  # fmt: skip

    async def load(self) -> None:
        """Offer GitHub when the backend has it enabled."""
        try:
            names = {p.name for p in await self.shop.client.providers()}
        except Exception:  # an older backend, or unreachable: email and password only
            log.info("could not list identity providers", exc_info=True)
            return
        self.github.visible = "github" in names

    async def sign_in_with_github(self, _event: ft.Event[ft.OutlinedButton]) -> None:
        """Start GitHub sign-in the way this app can run it."""
        self.error.value = ""
        app, page = self.shop.settings.github, self.shop.page
        if app is not None and page.web:
            page.on_login = self.on_github_login
            await page.login(github_provider(app, self.shop.settings.app_url), fetch_user=False)
            return
        await self.finish(self.shop.client.sign_in_with_provider("github", open_in_browser))

    async def on_github_login(self, event: ft.LoginEvent) -> None:
        """Flet finished the GitHub flow: trade its access token for the backend's tokens."""
        auth = self.shop.page.auth
        token = await auth.get_token() if auth is not None and not event.error else None
        if token is None or not token.access_token:
            self.error.value = f"GitHub sign-in failed: {event.error_description or event.error}"
            self.shop.page.update()
            return
        await self.finish(self.shop.client.login_with_provider("github", token.access_token))

    async def finish(self, signing_in: Awaitable[User]) -> None:
        """Wait for a provider sign-in; show the catalog, or why it failed."""
        try:
            user = await signing_in
        except Exception as exc:  # refused, conflicting account, provider or server down
            self.error.value = f"GitHub sign-in failed: {error_message(exc)}"
            self.shop.page.update()
            return
        await self.shop.signed_in(user)

    async def submit(self, _event: ft.Event[ft.TextField] | ft.Event[ft.Button]) -> None:
        """Sign in with what was typed."""
        email, password = (self.email.value or "").strip(), self.password.value or ""
        if not email or not password:
            self.error.value = "Enter your email and password."
            self.shop.page.update()
            return
        self.button.disabled = True
        self.error.value = ""
        self.shop.page.update()
        try:
            user = await self.shop.client.login(email, password)
        except AuthError:
            self.error.value = "Wrong email or password."
        except Exception as exc:  # ApiError, or the server is unreachable
            self.error.value = error_message(exc)
        else:
            await self.shop.signed_in(user)
            return
        finally:
            self.button.disabled = False
        self.shop.page.update()
