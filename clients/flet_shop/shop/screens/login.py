"""Sign in."""

from __future__ import annotations

import flet as ft
from flet_backend_client import AuthError

from shop.screens.base import Screen, heading
from shop.texts import error_message


class LoginScreen(Screen):
    """Email and password; on success the shell switches to the catalog."""

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
        return ft.Column(
            [heading("Flet Shop"), ft.Text("Sign in to continue"), self.email, self.password,
             self.button, self.error],
            spacing=16,
        )  # fmt: skip

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
