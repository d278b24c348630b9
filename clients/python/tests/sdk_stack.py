"""Helpers shared by the SDK tests: a running stack, event-loop runner, unique emails."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from backend.config import PROJECT_ROOT
from tests.support.processes import (
    BIN,
    Process,
    kill_tree,
)

SDK_REDIS_DB = 11
ADMIN_EMAIL = "root@example.test"
PASSWORD = "correct horse battery"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.test"


@dataclass
class Stack:
    """A running server: its address, environment and processes."""

    base_url: str
    port: int
    env: dict[str, str]
    web: Process
    processes: list[Process] = field(default_factory=list)

    def flask(self, *args: str) -> str:
        """Run `flask --app wsgi ARGS` against the stack's database and Redis."""
        done = subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", *args],
            env=self.env, cwd=PROJECT_ROOT, check=True, timeout=120, capture_output=True,
            text=True,
        )  # fmt: skip
        return done.stdout

    def output(self) -> str:
        return "".join(self.web.output)

    def start(self, command: str, **extra: str) -> Process:
        process = Process(["bash", "-c", f"exec {command}"], {**self.env, **extra}, background=True)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            kill_tree(process.popen.pid)
            process.popen.wait()
