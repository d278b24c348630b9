"""Settings read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_API_BASE = "http://127.0.0.1:8000"
MOBILE_MAX_WIDTH = 600  # logical pixels: narrower windows get the "mobile" image rendition


@dataclass(frozen=True)
class GitHubApp:
    """The GitHub OAuth app Flet's `page.login` signs in with (web mode).

    The backend must be configured with the same client id (`OAUTH_GITHUB_CLIENT_ID`): it
    accepts only tokens issued to it. The endpoints default to GitHub's; tests point them
    at a local stand-in.
    """

    client_id: str
    client_secret: str
    authorize_url: str = "https://github.com/login/oauth/authorize"
    token_url: str = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL


@dataclass(frozen=True)
class Settings:
    """What the app needs to know about its surroundings.

    Attributes:
        api_base: The backend's address without `/api/v1` (the SDK adds it).
        page_size: Products per page in the catalog.
        github: The GitHub app for "Sign in with GitHub" in web mode (None: the backend
            runs the sign-in instead, when it offers GitHub).
        app_url: Where this app is served in web mode (for the OAuth callback).
    """

    api_base: str = DEFAULT_API_BASE
    page_size: int = 20
    github: GitHubApp | None = None
    app_url: str = ""


def _github(env: os._Environ[str] | dict[str, str]) -> GitHubApp | None:
    client_id = env.get("SHOP_GITHUB_CLIENT_ID", "").strip()
    secret = env.get("SHOP_GITHUB_CLIENT_SECRET", "").strip()
    if not client_id or not secret:
        return None
    defaults = GitHubApp(client_id, secret)
    return GitHubApp(
        client_id, secret,
        authorize_url=env.get("SHOP_GITHUB_AUTHORIZE_URL", "").strip() or defaults.authorize_url,
        token_url=env.get("SHOP_GITHUB_TOKEN_URL", "").strip() or defaults.token_url,
    )  # fmt: skip


def load_settings() -> Settings:
    """Read the settings from the environment.

    `API_BASE`, `SHOP_PAGE_SIZE`; for Flet's own GitHub sign-in `SHOP_GITHUB_CLIENT_ID`,
    `SHOP_GITHUB_CLIENT_SECRET` (optional `SHOP_GITHUB_AUTHORIZE_URL`,
    `SHOP_GITHUB_TOKEN_URL`) and `SHOP_APP_URL` (default from `FLET_SERVER_IP` and
    `FLET_SERVER_PORT`).

    Returns:
        The settings, with defaults for anything unset.
    """
    env = os.environ
    base = env.get("API_BASE", "").strip() or DEFAULT_API_BASE
    size = env.get("SHOP_PAGE_SIZE", "").strip()
    host, port = env.get("FLET_SERVER_IP", "127.0.0.1"), env.get("FLET_SERVER_PORT", "8550")
    app_url = env.get("SHOP_APP_URL", "").strip() or f"http://{host}:{port}"
    return Settings(
        api_base=base.rstrip("/"), page_size=int(size) if size.isdigit() else 20,
        github=_github(env), app_url=app_url.rstrip("/"),
    )  # fmt: skip


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
