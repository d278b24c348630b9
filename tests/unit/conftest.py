"""Unit tests cover the low-level modules and need no Redis.

An app built here (`make_app`, `app`) is given a Redis socket nothing listens on, so
a unit test that touches Redis fails at once: such a test belongs with its layer
(`tests/services`, `tests/jobs`, `tests/api`).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def redis_url(tmp_path: Path) -> str:
    """A Redis URL nothing listens on (the top conftest's starts and empties a real one)."""
    return f"unix://{tmp_path}/no-redis-here.sock"
