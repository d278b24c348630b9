"""The webhook sender on its own: the SSRF guard, signatures, deadlines, TLS, settings."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook

from backend.config import ConfigError, load_config
from backend.webhook_sender import (
    Message,
    Refused,
    Sender,
    check_url,
    checked_address,
    new_secret,
    refusal,
    resolve,
    signature,
)
from tests.support.webhook_receiver import Receiver


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("169.254.10.10", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("0.0.0.0", "a private address"),  # noqa: S104 - a destination, not a bind
        ("100.64.0.1", "not a public address"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_only_public_addresses_may_be_called(address: str, why: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


def test_destinations_are_resolved_and_every_address_checked() -> None:
    assert resolve("[::1]", 80) == [ipaddress.ip_address("::1")]
    assert ipaddress.ip_address("127.0.0.1") in resolve("localhost", 80)
    with pytest.raises(Refused, match="does not resolve"):
        resolve("no-such-host.invalid", 80)
    with pytest.raises(Refused, match="a loopback address"):
        checked_address("localhost", 80, allow_private=False)
    assert checked_address("localhost", 80, allow_private=True) in ("127.0.0.1", "::1")
    assert checked_address("93.184.215.14", 443, allow_private=False) == "93.184.215.14"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://93.184.215.14/", "http:// or https://"),
        ("http:///path", "http:// or https://"),
        ("http://a:b@93.184.215.14/", "credentials"),
        ("http://93.184.215.14:99999/", "port"),
        ("https://[::ffff:10.0.0.1]/", "a private address"),
    ],
)
def test_urls_are_checked_before_they_are_saved(url: str, message: str) -> None:
    with pytest.raises(Refused, match=message):
        check_url(url, allow_private=False)


def test_secrets_and_signatures_follow_standard_webhooks() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert first != second
    header = signature([first, second], webhook_id="msg_1", timestamp=int(time.time()), body="{}")
    one, two = header.split(" ")
    assert one.startswith("v1,")
    assert two.startswith("v1,")
    for secret in (first, second):
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
                   "webhook-signature": header}  # fmt: skip
        assert Webhook(secret).verify("{}", headers) == {}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def test_an_attempt_has_one_deadline_even_against_a_trickling_receiver() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        while not stop.wait(0.1):  # a byte every 0.1 s: no single read ever times out
            try:
                conn.sendall(b"x")
            except OSError:
                break
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    sender = Sender(timeout=0.6, allow_private=True, connections=1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    started = time.monotonic()
    outcome = sender.send(Message(url, "msg_1", "{}", (new_secret(),)))
    stop.set()
    sender.close()
    listener.close()
    assert outcome.error == "timed out after 0.6 s"
    assert time.monotonic() - started < 1.5


def test_long_answers_are_cut_and_unix_sockets_refused(receiver: Receiver) -> None:
    sender = Sender(timeout=2, allow_private=True, connections=2)
    receiver.mode = "ok"
    ok = sender.send(Message(receiver.url, "msg_1", "{}", (new_secret(),)))
    assert (ok.ok, ok.status, ok.body, ok.error) == (True, 200, "ok", None)
    backend = sender._pool._network_backend
    with pytest.raises(Refused):
        backend.connect_unix_socket("/tmp/x.sock")
    backend.sleep(0)
    sender.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_checks_the_certificate_against_the_urls_host(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)
        except (ssl.SSLError, OSError):
            pass

    threading.Thread(target=serve, daemon=True).start()
    sender = Sender(timeout=2, allow_private=True, connections=1)
    url = f"https://localhost:{listener.getsockname()[1]}/"
    outcome = sender.send(Message(url, "msg_1", "{}", (new_secret(),)))
    sender.close()
    listener.close()
    assert outcome.status is None
    assert "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")  # a self-signed certificate


def test_webhook_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOKS_RETRY_SCHEDULE", "1, 2.5")
    config = load_config()
    assert config["WEBHOOKS_RETRY_SCHEDULE"] == [1.0, 2.5]
    assert config["WEBHOOKS_MAX_ATTEMPTS"] == 3
    assert config["WEBHOOKS_ALLOW_PRIVATE_NETWORKS"] is False
    for value in ("soon", "", "-1"):
        monkeypatch.setenv("WEBHOOKS_RETRY_SCHEDULE", value)
        if value:
            with pytest.raises(ConfigError, match="WEBHOOKS_RETRY_SCHEDULE"):
                load_config()
    monkeypatch.setenv("WEBHOOKS_RETRY_SCHEDULE", ",")
    with pytest.raises(ConfigError, match="at least one delay"):
        load_config()
    monkeypatch.delenv("WEBHOOKS_RETRY_SCHEDULE")
    with pytest.raises(ConfigError, match="LEASE"):
        load_config({"WEBHOOKS_LEASE_SECONDS": 5, "WEBHOOKS_TIMEOUT_SECONDS": 10})
    with pytest.raises(ConfigError, match="above 0"):
        load_config({"WEBHOOKS_TIMEOUT_SECONDS": 0})
    with pytest.raises(ConfigError, match="at least 1"):
        load_config({"WEBHOOKS_CONCURRENCY": 0})


def test_only_the_first_kilobyte_of_an_answer_is_kept() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 5000\r\n\r\n" + b"e" * 5000)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    sender = Sender(timeout=2, allow_private=True, connections=1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    outcome = sender.send(Message(url, "msg_1", "{}", (new_secret(),)))
    sender.close()
    listener.close()
    assert (outcome.status, outcome.ok, outcome.body) == (500, False, "e" * 1024)
