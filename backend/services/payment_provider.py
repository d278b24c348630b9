"""Stripe's API: PaymentIntents (create, retrieve) and the signature of its webhook events.

Every call goes out through `backend.outside` as the `stripe` service (its
timeouts, retries and circuit breaker: while it is open, paying answers 503
at once without calling), form-encoded with
`Authorization: Bearer STRIPE_SECRET_KEY` to `STRIPE_API_BASE` (without `/v1`).
A provider that does not answer, or answers with an error we cannot act on,
raises `ServiceUnavailable` (`provider_unavailable`, with `Retry-After`).

Creating an intent sends an `Idempotency-Key` derived from the order (its id,
its creation time and the attempt number), so a retry after a lost answer
gets the very intent the first try made: the customer is never asked to pay
twice. Amounts go in the currency's minor unit, computed from the `Decimal`
total (never a float).

The webhook signature (`Stripe-Signature: t=<unix time>,v1=<hex>[,v1=...]`)
is an HMAC-SHA256 of `"{t}.{raw body}"` with `STRIPE_WEBHOOK_SECRET`; it is
checked here as Stripe's own libraries check it (any `v1` may match, compared
in constant time, and `t` no older than the tolerance).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from flask import current_app

from backend import outside
from backend.errors import BusinessRuleViolation, DomainError, ServiceUnavailable

log = structlog.get_logger(__name__)

SERVICE = "stripe"
STRIPE_VERSION = "2024-06-20"  # the API version the requests and the parsing are written for
# Currencies whose minor unit is not the hundredth (Stripe's list).
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Stripe's statuses and ours. `requires_payment_method` after a failed attempt
# (`last_payment_error` set) is `failed`: the customer may try again.
STATUSES = {
    "requires_payment_method": "requires_payment",
    "requires_confirmation": "requires_payment",
    "requires_action": "requires_payment",
    "processing": "processing",
    "requires_capture": "processing",
    "succeeded": "succeeded",
    "canceled": "cancelled",
}


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as the provider described it."""

    id: str
    status: str  # the provider's own word
    amount: int  # in the currency's minor unit
    currency: str  # lower-case, as Stripe writes it
    client_secret: str
    order_id: str  # metadata[order_id]
    failed: bool  # its last attempt failed (`last_payment_error`)

    @property
    def our_status(self) -> str:
        """The payment status this intent means here."""
        if self.status == "requires_payment_method" and self.failed:
            return "failed"
        return STATUSES.get(self.status, "requires_payment")

    @classmethod
    def from_json(cls, body: Any) -> Intent:
        """Read a PaymentIntent object; raise `ValueError` when it is not one."""
        if not isinstance(body, dict) or body.get("object") != "payment_intent":
            raise ValueError("not a payment_intent")
        metadata = body.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        return cls(
            id=str(body["id"]),
            status=str(body.get("status") or ""),
            amount=int(body.get("amount") or 0),
            currency=str(body.get("currency") or ""),
            client_secret=str(body.get("client_secret") or ""),
            order_id=str(metadata.get("order_id") or ""),
            failed=bool(body.get("last_payment_error")),
        )


def is_enabled() -> bool:
    """Whether payments are configured (`STRIPE_SECRET_KEY` is set)."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def not_configured() -> ServiceUnavailable:
    """The error while payments are not configured on this deployment."""
    return ServiceUnavailable("Payments are not configured here.", error="payments_not_configured")


def unavailable(retry_after: int = outside.RETRY_AFTER_SECONDS) -> ServiceUnavailable:
    """The error for a provider that does not answer (or answers nothing usable)."""
    return ServiceUnavailable(
        "The payment provider is not answering; try again shortly.",
        error="provider_unavailable",
        headers={"Retry-After": str(max(1, retry_after))},
    )


def to_minor(amount: Decimal, currency: str) -> int:
    """Return `amount` in `currency`'s minor unit (cents for USD, yen for JPY).

    Raises `ValueError` when the amount has finer parts than the currency allows.
    """
    code = currency.upper()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    minor = amount.scaleb(places)
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} {code} cannot be charged in whole minor units")
    return int(minor)


def idempotency_key(*, order_id: int, order_created: Any, attempt: int) -> str:
    """The provider's `Idempotency-Key` for an order's `attempt`-th intent.

    The order's creation time is part of it, so that two databases sharing one
    provider account (a reset test database, staging) never share a key.
    """
    return f"order-{order_id}-{order_created:%Y%m%dT%H%M%S%f}-pay-{attempt}"


def _call(method: str, path: str, **kwargs: Any) -> outside.Reply:
    config = current_app.config
    headers = {
        "Authorization": f"Bearer {config['STRIPE_SECRET_KEY']}",
        "Stripe-Version": STRIPE_VERSION,
        **kwargs.pop("headers", {}),
    }
    url = f"{config['STRIPE_API_BASE']}/v1/{path}"
    try:
        return outside.request(
            method, url, timeout=float(config["STRIPE_TIMEOUT_SECONDS"]), service=SERVICE,
            headers=headers, **kwargs,
        )  # fmt: skip
    except outside.Unreachable as exc:
        raise unavailable(exc.retry_after) from exc


def _intent(reply: outside.Reply) -> Intent:
    """The intent of a 200, else `provider_unavailable` (logged: a 4xx here is our mistake)."""
    body = reply.json()
    if reply.status == 200:
        try:
            return Intent.from_json(body)
        except (KeyError, ValueError, TypeError):
            pass
    error = body.get("error") if isinstance(body, dict) else None
    details = error if isinstance(error, dict) else {}
    log.error(
        "stripe_request_refused", status=reply.status, type=details.get("type"),
        code=details.get("code"), message=details.get("message"),
    )  # fmt: skip
    raise unavailable()


def create_intent(
    *, order_id: int, order_created: Any, amount: Decimal, currency: str, attempt: int
) -> Intent:
    """Create (or, on a retry, get back) the PaymentIntent for an order's `attempt`.

    Raises `ServiceUnavailable` (`provider_unavailable`) when the provider
    cannot be reached or refuses, and `BusinessRuleViolation` (409
    `amount_not_payable`) for an amount the currency cannot express.
    """
    try:
        minor = to_minor(amount, currency)
    except ValueError as exc:
        raise BusinessRuleViolation(str(exc), error="amount_not_payable") from exc
    key = idempotency_key(order_id=order_id, order_created=order_created, attempt=attempt)
    form = {
        "amount": str(minor),
        "currency": currency.lower(),
        "metadata[order_id]": str(order_id),
        "automatic_payment_methods[enabled]": "true",
    }
    reply = _call(
        "POST", "payment_intents", data=form, idempotent=True, headers={"Idempotency-Key": key}
    )
    intent = _intent(reply)
    if (intent.order_id, intent.amount, intent.currency) != (
        str(order_id),
        minor,
        form["currency"],
    ):
        # Never attach an intent made for something else (a key shared by mistake).
        log.error("stripe_intent_mismatch", intent=intent.id, order_id=order_id)
        raise unavailable()
    return intent


def retrieve_intent(intent_id: str) -> Intent:
    """Return the PaymentIntent `intent_id` as the provider has it now.

    Raises `ServiceUnavailable` (`provider_unavailable`).
    """
    return _intent(_call("GET", f"payment_intents/{intent_id}"))


def invalid_signature(message: str) -> DomainError:
    """The error (400 `invalid_signature`) for a missing, wrong or too old `Stripe-Signature`."""
    return DomainError(message, error="invalid_signature")


def verify_signature(
    payload: bytes, header: str | None, *, secret: str, tolerance: int, now: float | None = None
) -> None:
    """Check a webhook's `Stripe-Signature` for `payload` (the raw body).

    Raises `DomainError` (400 `invalid_signature`) unless one of its `v1` signatures is the
    HMAC-SHA256 of `"{t}.{payload}"` with `secret` and `t` is at most
    `tolerance` seconds old.
    """
    timestamp, signatures = _parse_signature(header or "")
    signed = f"{timestamp}.".encode() + payload
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise invalid_signature("The event's signature does not match.")
    if timestamp < (time.time() if now is None else now) - tolerance:
        raise invalid_signature("The event is too old.")


def _parse_signature(header: str) -> tuple[int, list[str]]:
    pairs = [item.split("=", 1) for item in header.split(",") if "=" in item]
    stamps = [value.strip() for key, value in pairs if key.strip() == "t"]
    signatures = [value.strip() for key, value in pairs if key.strip() == "v1"]
    if not stamps or not stamps[0].isdigit() or not signatures:
        raise invalid_signature("The Stripe-Signature header is missing or malformed.")
    return int(stamps[0]), signatures


def sign(payload: bytes, *, secret: str, timestamp: int | None = None) -> str:
    """Return a `Stripe-Signature` header for `payload` (what Stripe sends; for tests and tools)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"
