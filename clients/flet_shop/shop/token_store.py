"""Keeps the SDK's tokens in Flet's SharedPreferences (browser storage on the web)."""

from __future__ import annotations

import json

import flet as ft
from flet_backend_client import Tokens

TOKENS_KEY = "flet_shop.tokens"


class PrefsTokenStore:
    """A `TokenStore` over `ft.SharedPreferences`, so a signed-in device stays signed in."""

    def __init__(self, prefs: ft.SharedPreferences, key: str = TOKENS_KEY) -> None:
        self.prefs = prefs
        self.key = key

    async def load(self) -> Tokens | None:
        """Return the saved tokens, or None when there are none (or they are unreadable)."""
        raw = await self.prefs.get(self.key)
        if not isinstance(raw, str):
            return None
        try:
            data = json.loads(raw)
            return Tokens(
                access_token=str(data["access_token"]), refresh_token=str(data["refresh_token"])
            )
        except (ValueError, KeyError, TypeError):
            return None

    async def save(self, tokens: Tokens | None) -> None:
        """Save `tokens`, or forget them when None (signed out)."""
        if tokens is None:
            await self.prefs.remove(self.key)
            return
        payload = {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token}
        await self.prefs.set(self.key, json.dumps(payload))
