"""Redis through Sentinel: the master's clients, and how they behave during a failover.

`master_client` builds a client for the master the sentinels name, with a
bounded, blocking pool (as the URL clients have). The pool asks the sentinels
for the master's address each time it opens a connection, and at most once a
second as connections are taken, and drops idle connections when that address
changes; a connection that breaks (the master died) is reopened, so a client
finds the new master by itself once one is elected. Until then each command
fails with a `redis.ConnectionError` (`MasterNotFoundError` while the
sentinels agree on none), which the API answers with 503.

Two retry policies, chosen by the process:

- `RETRY_DEMOTED` (web processes): retry once, at once, only when the server
  answered READONLY, i.e. it was demoted to a replica under us. A replica
  refuses every write, so nothing ran and repeating the command on the new
  master is safe. A command whose connection broke is not repeated: it may have
  run before the master died.
- `RetryUntil(seconds)` (workers and cron): retry connection errors and timeouts
  with capped backoff until `seconds` have passed, so the process rides out a
  failover instead of exiting (RQ's worker quits on an unexpected Redis error).
  Jobs are at-least-once already.

Sentinel itself closes the connections of a master it demotes (`CLIENT KILL`),
some seconds after a failover that left it running; the SSE hub does not wait
for that (`backend.sse`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)

T = TypeVar("T")
Address = tuple[str, int]
MASTER_CHECK_SECONDS = 1.0  # how stale a pool's idea of the master's address may get


class MasterDemoted(redis.ConnectionError):
    """The server answered READONLY: it is a replica now and refused the command."""


class MasterConnection(SentinelManagedConnection):
    """A connection to the sentinels' master that tells a demoted master from a broken link.

    It also asks the sentinels again whenever it reconnects. redis-py (8.1)
    reopens a connection that broke inside a command's retry straight to its
    old address (`send_packed_command` calls `connect_check_health`, not the
    Sentinel-aware `connect`), so a retry after a failover would knock on the
    dead or demoted master until it gave up.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Send a command, (re)connecting to wherever the sentinels say the master is."""
        if not self._sock:
            self.connect()
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """Read a reply; READONLY raises `MasterDemoted` (the connection is already closed)."""
        try:
            return super().read_response(*args, **kwargs)
        except redis.ConnectionError as exc:
            # redis-py turns READONLY into a ConnectionError and disconnects.
            if isinstance(exc.__context__, redis.ReadOnlyError):
                raise MasterDemoted(str(exc)) from exc
            raise


class BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel pool with at most `max_connections`, waiting `timeout` for a free one.

    It asks the sentinels where the master is at most every
    `MASTER_CHECK_SECONDS` as connections are taken, and drops its idle
    connections to a master that was replaced while still alive (a manual
    `SENTINEL FAILOVER`: the sentinels demote the old master only some seconds
    later, and writes it accepts meanwhile are lost); busy ones are dropped as
    they come back. A dead master needs no check: its connections fail.
    """

    _checked_at = float("-inf")

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """Take a connection to the current master (waiting for a free one)."""
        self.follow_master()
        return super().get_connection(*args, **kwargs)

    def follow_master(self) -> Address | None:
        """The master's address, asked of the sentinels if the last answer is stale.

        None when no sentinel names one (connecting will then fail and say so).
        """
        now = time.monotonic()
        if now - self._checked_at < MASTER_CHECK_SECONDS:
            return cast(Address | None, self.master_address)
        self._checked_at = now
        try:
            return cast(Address, self.get_master_address())
        except (redis.ConnectionError, redis.TimeoutError):
            return None


class RetryUntil(Retry):
    """Retry connection errors and timeouts with capped backoff until `seconds` have passed.

    redis-py nests retries (a command's retry reconnects under the connection's
    own), so the budget is time, not attempts: a nested loop ends at its own
    deadline and the outer one then gives up too.
    """

    def __init__(self, seconds: float) -> None:
        """Retry for about `seconds` (backoff from 0.05 s, doubling up to 1 s)."""
        errors = (redis.ConnectionError, redis.TimeoutError, TimeoutError)
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), -1, errors)
        self.seconds = seconds

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Call `do`, calling `fail(error)` and retrying until the deadline."""
        deadline = time.monotonic() + self.seconds

        def retryable(error: Exception) -> bool:
            if is_retryable is not None and not is_retryable(error):
                return False
            return time.monotonic() < deadline

        return super().call_with_retry(do, fail, retryable, with_failure_count)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RetryUntil) and other.seconds == self.seconds

    __hash__ = Retry.__hash__


RETRY_DEMOTED = Retry(NoBackoff(), 1, (MasterDemoted,))


class Sentinels(Sentinel):
    """redis-py's `Sentinel`, with a short message when no sentinel names a master."""

    def discover_master(self, service_name: str) -> Address:
        """Return the master's address; raises `MasterNotFoundError` (a ConnectionError)."""
        try:
            return cast(Address, super().discover_master(service_name))
        except MasterNotFoundError as exc:
            # redis-py's own message holds the repr of every sentinel client (kilobytes).
            asked = ", ".join(f"{host}:{port}" for host, port in self.addresses())
            message = f"No master found for {service_name!r} (asked {asked})"
            raise MasterNotFoundError(message) from exc

    def addresses(self) -> list[Address]:
        """The sentinels asked, in the order they are tried."""
        found = []
        for client in self.sentinels:
            settings = client.connection_pool.connection_kwargs
            found.append((str(settings["host"]), int(settings["port"])))
        return found


def sentinel_options(*, password: str | None, timeout: float | None) -> dict[str, Any]:
    """Connection options for talking to the sentinels themselves.

    No retries: a sentinel that does not answer is skipped for the next one
    (redis-py's default would retry each one ten times, for seconds).
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if password:
        options["password"] = password
    return options


def sentinel_manager(
    sentinels: Sequence[Address], *, password: str | None, timeout: float | None
) -> Sentinels:
    """Return a `Sentinel` that asks `sentinels` (with `password`, if they need one)."""
    return Sentinels(
        list(sentinels), sentinel_kwargs=sentinel_options(password=password, timeout=timeout)
    )


def master_client(
    manager: Sentinels,
    master: str,
    *,
    max_connections: int,
    timeout: float | None,
    **connection_kwargs: Any,
) -> redis.Redis:
    """Return a client for `master` whose pool holds at most `max_connections`."""
    pool = BlockingSentinelPool(
        master,
        manager,
        max_connections=max_connections,
        timeout=timeout,
        connection_class=MasterConnection,
        **connection_kwargs,
    )
    return redis.Redis(connection_pool=pool)


def sentinel_addresses(pool: SentinelConnectionPool) -> tuple[Address, ...]:
    """The sentinels a Sentinel pool asks, sorted (the manager reorders them as it goes)."""
    return tuple(sorted(Sentinels.addresses(pool.sentinel_manager)))
