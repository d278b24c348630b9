"""Settings read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_API_BASE = "http://127.0.0.1:8000"
MOBILE_MAX_WIDTH = 600  # logical pixels: narrower windows get the "mobile" image rendition


@dataclass(frozen=True)
class Settings:
    """What the app needs to know about its surroundings.

    Attributes:
        api_base: The backend's address without `/api/v1` (the SDK adds it).
        page_size: Products per page in the catalog.
    """

    api_base: str = DEFAULT_API_BASE
    page_size: int = 20


def load_settings() -> Settings:
    """Read the settings from the environment (`API_BASE`, `SHOP_PAGE_SIZE`).

    Returns:
        The settings, with defaults for anything unset.
    """
    base = os.environ.get("API_BASE", "").strip() or DEFAULT_API_BASE
    size = os.environ.get("SHOP_PAGE_SIZE", "").strip()
    return Settings(api_base=base.rstrip("/"), page_size=int(size) if size.isdigit() else 20)


def image_variant(width: float | None) -> str:
    """Pick the image rendition for a window `width` wide.

    Args:
        width: The page width in logical pixels (None when not known yet).

    Returns:
        `"mobile"` for narrow windows, else `"desktop"`.
    """
    if width is not None and width < MOBILE_MAX_WIDTH:
        return "mobile"
    return "desktop"
