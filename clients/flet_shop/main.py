"""Run Flet Shop: `python main.py` (FLET_VIEW=web for a browser) or `flet run [--web] main.py`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SDK = HERE.parent / "python" / "src"  # the client SDK, when run from the repository
if SDK.is_dir() and str(SDK) not in sys.path:
    sys.path.insert(0, str(SDK))

import flet as ft  # noqa: E402 - after the SDK path is set
from shop.app import main  # noqa: E402


def view_from_environment() -> ft.AppView | None:
    """Return the presentation asked for by `FLET_VIEW` (`web`, `desktop`, `hidden`, `none`)."""
    views = {
        "web": ft.AppView.WEB_BROWSER,
        "desktop": ft.AppView.FLET_APP,
        "hidden": ft.AppView.FLET_APP_HIDDEN,
        "none": None,
    }
    return views.get(os.environ.get("FLET_VIEW", "desktop").lower(), ft.AppView.FLET_APP)


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    assets = HERE / "assets"
    ft.run(main, view=view_from_environment(), assets_dir=str(assets) if assets.is_dir() else None)
