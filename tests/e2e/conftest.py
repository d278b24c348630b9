"""Fixtures for the end-to-end tests: the Procfile's processes as production runs them.

The browser tests' fixtures (`stack`, `shop_url`, `tab`, ...) live in
`tests/support/flet_shop.py` and are made available here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.flet_shop import artifacts, shop_env, shop_url, stack, stack_env, tab
from tests.support.processes import (
    Process,
    free_port,
    procfile,
    procfile_environment,
    wait_until_up,
)


@pytest.fixture
def production_web(
    database_url: str, redis_url: str, processes: Callable[..., Process]
) -> Callable[..., str]:
    """Start the Procfile's `web` line in production mode; `start(**env)` returns its base URL."""

    def start(**extra_env: str) -> str:
        port = free_port()
        env = {**procfile_environment(database_url, redis_url, port), **extra_env}
        processes(["bash", "-c", f"exec {procfile()['web']}"], env)
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz")
        return base

    return start


__all__ = ["artifacts", "production_web", "shop_env", "shop_url", "stack", "stack_env", "tab"]
