"""Sending webhooks: the SSRF guard, Standard Webhooks signatures, one pooled HTTP client.

Only workers send (`backend.services.webhook_delivery` drives a `Sender` from a
thread pool); requests only call `check_url` when an admin saves a URL.

- **SSRF guard.** A destination must resolve to public addresses only: loopback,
  private, link-local, multicast, reserved, unspecified, shared (100.64/10) and
  the cloud metadata addresses (169.254.169.254, fd00:ec2::254) are refused,
  IPv4-mapped IPv6 included, unless `allow_private`. The check runs inside the
  connection pool's network backend, on every new connection: the host is
  resolved once, checked, and the socket connects to that very address, so a
  DNS answer that changes between the check and the connect (rebinding) is
  never used. The URL is untouched, so `Host` and the TLS SNI name (and the
  certificate check) are the URL's host.
- **Timeout.** Each attempt has one deadline, `timeout` seconds from its start:
  connecting, TLS, writing and every read are bounded by what is left of it,
  so a receiver that trickles its answer is cut off too (DNS resolution is the
  system resolver's own and is not bounded by it).
- **No redirects** are followed (a 3xx is an answer like any other non-2xx);
  at most `RESPONSE_BODY_LIMIT` bytes of the answer are read and kept.
- **Signatures** per Standard Webhooks (the `standardwebhooks` library): one
  `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` per secret, separated
  by spaces (two during a secret rotation).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 24
RESPONSE_BODY_LIMIT = 1024
USER_AGENT = b"flet-backend-webhooks/1"
SCHEMES = ("http", "https")
# Headers and body go out in separate writes: without this, Nagle's algorithm holds the
# body back until the receiver's delayed ACK (40 ms per request on Linux).
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_REFUSED_KINDS = (
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
    ("is_unspecified", "an unspecified address"),
)


class Refused(Exception):
    """The destination may not be called: it does not resolve, or not to a public address."""


def new_secret() -> str:
    """Return a fresh signing secret, `whsec_<base64 of 24 random bytes>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def refusal(address: IPAddress) -> str | None:
    """Say why `address` may not be called (`"a loopback address"`, ...), or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for attribute, kind in _REFUSED_KINDS:
        if getattr(address, attribute):
            return kind
    return None if address.is_global else "not a public address"


def resolve(host: str, port: int) -> list[IPAddress]:
    """Return the addresses `host` resolves to (an address literal is itself).

    Raises `Refused` when it does not resolve.
    """
    literal = host.strip("[]")
    with contextlib.suppress(ValueError):
        return [ipaddress.ip_address(literal)]
    try:
        found = socket.getaddrinfo(literal, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{literal} does not resolve") from exc
    addresses = (ipaddress.ip_address(str(entry[4][0]).split("%")[0]) for entry in found)
    return list(dict.fromkeys(addresses))


def checked_address(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve `host` and return the address to connect to, once every address is allowed.

    Raises `Refused` naming the first address that is not (or when nothing resolves).
    """
    addresses = resolve(host, port)
    if not allow_private:
        for address in addresses:
            if (why := refusal(address)) is not None:
                raise Refused(f"{host.strip('[]')} resolves to {address}, {why}")
    return str(addresses[0])


def check_url(url: str, *, allow_private: bool) -> None:
    """Check a webhook URL before it is saved: http(s), a host, and allowed addresses.

    Raises `Refused` with the reason.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise Refused("the URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise Refused("the URL may not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Refused("the URL's port is not valid") from exc
    checked_address(parts.hostname, port, allow_private=allow_private)


def signature(secrets_: Sequence[str], *, webhook_id: str, timestamp: int, body: str) -> str:
    """Return the `webhook-signature` header: one `v1,<sig>` per secret, space-separated."""
    signed_at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(
        Webhook(secret).sign(msg_id=webhook_id, timestamp=signed_at, data=body)
        for secret in secrets_
    )


@dataclass(frozen=True)
class Message:
    """One attempt to make: where, the stable `webhook-id`, the body, the signing secrets."""

    url: str
    webhook_id: str
    body: str
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: the status (None when there was no answer), body, error, time."""

    status: int | None
    body: str | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the receiver took it (a 2xx)."""
        return self.status is not None and 200 <= self.status < 300


_attempt = threading.local()  # the deadline of the attempt this thread is making


def _left(timeout: float | None) -> float | None:
    deadline: float | None = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the current attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:  # fmt: skip
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to an address it resolved and checked itself (see the module's doc)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:  # fmt: skip
        address = checked_address(host, port, allow_private=self._allow_private)
        return _DeadlineStream(
            self._inner.connect_tcp(address, port, _left(timeout), local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:  # fmt: skip
        raise Refused("webhooks are never sent over a Unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    _attempt.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _attempt.deadline = None


class Sender:
    """One connection pool for many concurrent attempts (thread-safe; reuses connections).

    Args:
        timeout: Seconds one attempt may take, all included but DNS.
        allow_private: Let destinations resolve to private and loopback addresses.
        connections: The most connections open at once (one per sending thread).
    """

    def __init__(self, *, timeout: float, allow_private: bool, connections: int) -> None:
        self.timeout = timeout
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(), max_connections=connections,
            keepalive_expiry=30.0, retries=0, socket_options=NO_DELAY,
            network_backend=_GuardedBackend(allow_private=allow_private),
        )  # fmt: skip

    def send(self, message: Message) -> Outcome:
        """POST `message` once, signed now; return what happened (never raises for the network)."""
        started = time.monotonic()
        timestamp = int(time.time())
        headers = [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT),
            (b"webhook-id", message.webhook_id.encode()),
            (b"webhook-timestamp", str(timestamp).encode()),
            (b"webhook-signature", signature(
                message.secrets, webhook_id=message.webhook_id, timestamp=timestamp,
                body=message.body).encode()),
        ]  # fmt: skip
        status, body, error = None, None, None
        try:
            with _deadline(self.timeout):
                status, body = self._post(message.url, headers, message.body.encode())
        except Refused as exc:
            error = f"refused: {exc}"
        except httpcore.TimeoutException:
            error = f"timed out after {self.timeout:g} s"
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
                OSError) as exc:  # fmt: skip
            error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        return Outcome(status, body, error, time.monotonic() - started)

    def _post(self, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, str]:
        limits = dict.fromkeys(("connect", "read", "write", "pool"), self.timeout)
        with self._pool.stream(
            "POST", url, headers=headers, content=body, extensions={"timeout": limits}
        ) as response:
            kept = bytearray()
            for chunk in response.iter_stream():
                kept += chunk
                if len(kept) >= RESPONSE_BODY_LIMIT:
                    break  # the rest is not read: the connection is closed, not reused
            return response.status, bytes(kept[:RESPONSE_BODY_LIMIT]).decode(errors="replace")

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()
