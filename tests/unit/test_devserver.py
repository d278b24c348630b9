"""The dev command's process supervisor."""

from __future__ import annotations

import os
import sys
import time

import pytest

from backend import devserver


def test_when_one_process_dies_the_rest_are_stopped_and_its_code_returned() -> None:
    started = time.monotonic()
    code = devserver.supervise(
        {
            "sleeper": [sys.executable, "-c", "import time; time.sleep(60)"],
            "crasher": [sys.executable, "-c", "raise SystemExit(3)"],
        },
        dict(os.environ),
    )
    assert code == 3
    assert time.monotonic() - started < 30


def test_child_environment_shares_the_redis_url_and_defaults_to_development() -> None:
    env = devserver.child_environment("unix:///tmp/x/redis.sock")
    assert env["REDIS_URL"] == "unix:///tmp/x/redis.sock"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["ENV"] == os.environ.get("ENV", "development")


def test_with_sentinels_the_dev_processes_keep_the_environment_s_redis_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "127.0.0.1:26379")
    monkeypatch.delenv("REDIS_URL", raising=False)
    env = devserver.child_environment(None)
    assert "REDIS_URL" not in env
    assert env["REDIS_SENTINELS"] == "127.0.0.1:26379"


def test_dev_commands_cover_web_worker_and_cron() -> None:
    commands = devserver.dev_commands("127.0.0.1", 8123)
    assert set(commands) == {"web", "worker", "cron"}
    assert "127.0.0.1:8123" in commands["web"]
    assert "--with-scheduler" in commands["worker"]
    assert commands["worker"][-3:] == ["high", "default", "low"]
    for name in ("worker", "cron"):  # Redis as the Procfile reaches it: URL or sentinels
        assert commands[name][commands[name].index("-c") + 1] == "jobs.rq_settings"
