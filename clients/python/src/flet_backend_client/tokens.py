"""Tokens and where they are kept between runs."""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


def _jwt_claim(token: str, name: str) -> float | None:
    """Read a numeric claim of a JWT without verifying it (None when unreadable)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims: Any = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    value = claims.get(name) if isinstance(claims, dict) else None
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Tokens:
    """A signed-in device's token pair.

    Attributes:
        access_token: Short-lived (15 min) Bearer token for API calls.
        refresh_token: Long-lived token, spent (rotated) on every refresh.
    """

    access_token: str
    refresh_token: str

    @property
    def access_expires_at(self) -> float | None:
        """Unix time the access token expires, read from the token itself."""
        return _jwt_claim(self.access_token, "exp")

    def access_expired(self, leeway: float = 30.0) -> bool:
        """Whether the access token expires within `leeway` seconds (False when unknown).

        The leeway is capped at a quarter of the token's lifetime, so short-lived
        tokens are not refreshed on every call.
        """
        expires = self.access_expires_at
        if expires is None:
            return False
        issued = _jwt_claim(self.access_token, "iat")
        if issued is not None:
            leeway = min(leeway, (expires - issued) / 4)
        return expires - leeway <= time.time()

    def to_dict(self) -> dict[str, str]:
        """A JSON-able form, for token stores that persist strings."""
        return {"access_token": self.access_token, "refresh_token": self.refresh_token}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokens:
        """Rebuild from `to_dict()` output (or a login/refresh response)."""
        return cls(access_token=str(data["access_token"]), refresh_token=str(data["refresh_token"]))


@runtime_checkable
class TokenStore(Protocol):
    """Where the client keeps its tokens (e.g. Flet's SharedPreferences, a keyring)."""

    async def load(self) -> Tokens | None:
        """Return the saved tokens, or None."""
        ...

    async def save(self, tokens: Tokens | None) -> None:
        """Save the tokens; None means forget them (signed out)."""
        ...


class MemoryTokenStore:
    """Keeps tokens in memory only (the default): lost when the process ends."""

    def __init__(self, tokens: Tokens | None = None) -> None:
        self.tokens = tokens

    async def load(self) -> Tokens | None:
        """Return the tokens held."""
        return self.tokens

    async def save(self, tokens: Tokens | None) -> None:
        """Hold these tokens."""
        self.tokens = tokens
