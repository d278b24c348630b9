"""RQ's settings module for the Procfile's `worker` and `cron`: `rq worker -c jobs.rq_settings`.

RQ's command line reads the upper-case names of this module. They say how to
reach Redis, built by the one factory (`backend.redis_store.rq_cli_settings`)
from the same settings the app reads: `SENTINEL` when `REDIS_SENTINELS` is set
(it takes precedence), else `REDIS_URL`. So one Procfile line works either way.
"""

from __future__ import annotations

from typing import Any

from backend.config import load_config
from backend.redis_store import RedisTarget, rq_cli_settings

_config = load_config()
_settings = rq_cli_settings(
    RedisTarget.from_config(_config), failover_wait=_config["REDIS_FAILOVER_WAIT_SECONDS"]
)

REDIS_URL: str | None = _settings.get("REDIS_URL")
SENTINEL: dict[str, Any] | None = _settings.get("SENTINEL")
