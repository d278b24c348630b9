"""A real local HTTP server speaking the part of Stripe's API the app uses, and its webhooks.

It serves `POST /v1/payment_intents` (form-encoded, honouring `Idempotency-Key`
as Stripe does: the same key with the same parameters answers the first
answer again, with other parameters 400 `idempotency_error`) and `GET
/v1/payment_intents/{id}`, for the Bearer secret key of `settings()`.

The test plays the customer and Stripe's dashboard: `complete(intent_id,
"succeeded" | "failed" | "processing" | "canceled")` moves an intent and returns
the signed event Stripe would send (`payment_intent.succeeded`, ...); it is
POSTed to `webhook_url` when one is set (a live server), unless
`drop_webhooks` is set (the webhook goes missing, for reconciliation), else
the test posts it itself (`WebhookEvent.payload` and `.headers`).

Fault modes: `mode = "error"` (every request answered 500), `"hang"`
(answers after `hang_seconds`, past the app's timeout), `failures` (that many
500s first, before anything is created), `drop_after_create` (that many
creates are made and then the connection is closed without an answer: the
app never hears back), and `stop()` (the port closed). `calls` lists every
request as `"METHOD /path"`.

The fixture `stripe_stand_in` starts one per test.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from backend.services.payment_provider import sign
from tests.support.stand_ins import LocalServer, serving

SECRET_KEY = "sk_test_stand_in_0123456789"  # noqa: S105
WEBHOOK_SECRET = "whsec_stand_in_0123456789abcdef"  # noqa: S105
WEBHOOK_PATH = "/api/v1/payments/webhook"
EVENT_TYPES = {
    "succeeded": "payment_intent.succeeded",
    "failed": "payment_intent.payment_failed",
    "processing": "payment_intent.processing",
    "canceled": "payment_intent.canceled",
}


@dataclass(frozen=True)
class WebhookEvent:
    """A signed event as Stripe sends it: post `payload` with `headers`."""

    id: str
    type: str
    payload: bytes
    headers: dict[str, str]


def signed_event(
    event_type: str,
    intent: dict[str, Any],
    *,
    event_id: str | None = None,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> WebhookEvent:
    """Build the event Stripe sends for `intent`, signed with `secret` at `timestamp`."""
    event_id = event_id or f"evt_{secrets.token_hex(12)}"
    body = {
        "id": event_id, "object": "event", "type": event_type, "api_version": "2024-06-20",
        "created": int(time.time()), "livemode": False, "data": {"object": intent},
    }  # fmt: skip
    payload = json.dumps(body).encode()
    signature = sign(payload, secret=secret, timestamp=timestamp)
    headers = {"Stripe-Signature": signature, "Content-Type": "application/json"}
    return WebhookEvent(event_id, event_type, payload, headers)


def _form(request: Request) -> dict[str, Any]:
    """The form body with Stripe's `a[b]=c` keys as nested objects."""
    parsed: dict[str, Any] = {}
    for key, value in parse_qsl(request.get_data(as_text=True), keep_blank_values=True):
        if "[" in key and key.endswith("]"):
            outer, inner = key[:-1].split("[", 1)
            parsed.setdefault(outer, {})[inner] = value
        else:
            parsed[key] = value
    return parsed


@dataclass
class StripeStandIn(LocalServer):
    """The running server: its intents, switches, and the customer's side."""

    hang_seconds: float = 2.0
    failures: int = 0
    drop_after_create: int = 0
    drop_webhooks: bool = False
    webhook_url: str | None = None
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    delivered: list[tuple[WebhookEvent, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """App settings with payments enabled and pointing here."""
        return {
            "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": self.base,
            "STRIPE_TIMEOUT_SECONDS": 0.5,
            **overrides,
        }

    def creates(self) -> int:
        """How many intents were created."""
        return len(self.intents)

    # The customer's side and Stripe's events ---------------------------------------------

    def complete(self, intent_id: str, outcome: str = "succeeded") -> WebhookEvent:
        """Move the intent as the customer's payment would; return (and maybe send) its event.

        `outcome`: `succeeded`, `failed` (back to `requires_payment_method` with a
        `last_payment_error`, as Stripe does), `processing` or `canceled`.
        """
        with self.lock:
            intent = self.intents[intent_id]
            if outcome == "failed":
                intent["status"] = "requires_payment_method"
                intent["last_payment_error"] = {"code": "card_declined", "type": "card_error"}
            else:
                intent["status"] = outcome
                intent["last_payment_error"] = None
            event = signed_event(EVENT_TYPES[outcome], dict(intent))
        if self.webhook_url and not self.drop_webhooks:
            reply = httpx.post(self.webhook_url, content=event.payload, headers=event.headers)
            self.delivered.append((event, reply.status_code))
        return event

    # The WSGI app -------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append(f"{request.method} {request.path}")
        if self.mode == "hang":
            time.sleep(self.hang_seconds)
        if self.failures > 0:
            self.failures -= 1
            return self.error(500, "api_error", "stand-in failure")(environ, start_response)
        if self.mode == "error":
            return self.error(500, "api_error", "stand-in failure")(environ, start_response)
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return self.error(401, "invalid_request_error", "bad key")(environ, start_response)
        response = self.route(request)
        if request.method == "POST" and response.status_code == 200 and self.drop_after_create:
            self.drop_after_create -= 1
            _hang_up(environ)
            return []
        return response(environ, start_response)

    def route(self, request: Request) -> Response:
        """Answer one authorised request."""
        parts = request.path.strip("/").split("/")
        if parts[:2] != ["v1", "payment_intents"]:
            return self.error(404, "invalid_request_error", "unknown path")
        if request.method == "POST" and len(parts) == 2:
            return self.create(request)
        if request.method == "GET" and len(parts) == 3:
            intent = self.intents.get(parts[2])
            if intent is None:
                return self.error(404, "invalid_request_error", "No such payment_intent")
            return as_json(intent)
        return self.error(404, "invalid_request_error", "unknown path")

    def create(self, request: Request) -> Response:
        """`POST /v1/payment_intents`, honouring `Idempotency-Key`."""
        params = _form(request)
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            if key is not None and key in self.keys:
                first_params, intent_id = self.keys[key]
                if first_params != params:
                    return self.error(
                        400, "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with.",
                    )  # fmt: skip
                return as_json(self.intents[intent_id], replayed=True)
            intent = self.new_intent(params)
            if key is not None:
                self.keys[key] = (params, intent["id"])
        return as_json(intent)

    def new_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        """Make and keep a new intent in `requires_payment_method`."""
        intent_id = f"pi_{secrets.token_hex(12)}"
        intent = {
            "id": intent_id, "object": "payment_intent", "amount": int(params["amount"]),
            "currency": params["currency"], "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "metadata": dict(params.get("metadata") or {}),
            "automatic_payment_methods": {"enabled": True}, "last_payment_error": None,
            "created": int(time.time()), "livemode": False,
        }  # fmt: skip
        self.intents[intent_id] = intent
        return intent

    @staticmethod
    def error(status: int, kind: str, message: str) -> Response:
        """A Stripe-shaped error."""
        return as_json({"error": {"type": kind, "message": message}}, status)


def _hang_up(environ: dict[str, Any]) -> None:
    """Close the client's connection without an answer."""
    sock: socket.socket | None = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def as_json(body: Any, status: int = 200, *, replayed: bool = False) -> Response:
    """A JSON response (with `Idempotent-Replayed` as Stripe sends it)."""
    response = Response(json.dumps(body), status, content_type="application/json")
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@contextlib.contextmanager
def running_stripe_stand_in(
    webhook_url: str | None = None, port: int = 0
) -> Iterator[StripeStandIn]:
    """Serve a Stripe stand-in on 127.0.0.1 (`port`, or a free one) until the block ends."""
    with serving(StripeStandIn(webhook_url=webhook_url), port) as fake:
        yield fake


@pytest.fixture
def stripe_stand_in() -> Iterator[StripeStandIn]:
    """A running Stripe stand-in, stopped after the test."""
    with running_stripe_stand_in() as fake:
        yield fake
