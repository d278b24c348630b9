"""The Stripe client's pure parts: minor units, statuses, signatures; and its refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from flask import Flask

from backend.errors import BusinessRuleViolation, DomainError, ServiceUnavailable
from backend.models import utcnow
from backend.services import payment_provider
from backend.services.payment_provider import Intent, sign, to_minor, verify_signature
from tests.support.stripe_stand_in import StripeStandIn

SECRET = "whsec_unit"  # noqa: S105
BODY = b'{"id":"evt_1"}'


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("20.50", "USD", 2050), ("0.01", "eur", 1), ("1200", "JPY", 1200), ("1.25", "KWD", 1250),
     ("9999999999.99", "USD", 999999999999)],
)  # fmt: skip
def test_amounts_go_in_the_currencys_minor_unit(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency) == minor


def test_an_amount_finer_than_the_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="whole minor units"):
        to_minor(Decimal("10.50"), "JPY")


@pytest.mark.parametrize(
    ("status", "failed", "ours"),
    [("requires_payment_method", False, "requires_payment"),
     ("requires_payment_method", True, "failed"), ("requires_action", False, "requires_payment"),
     ("processing", False, "processing"), ("requires_capture", False, "processing"),
     ("succeeded", False, "succeeded"), ("canceled", False, "cancelled"),
     ("something_new", False, "requires_payment")],
)  # fmt: skip
def test_the_providers_statuses_map_to_ours(status: str, failed: bool, ours: str) -> None:
    intent = Intent("pi_1", status, 100, "usd", "", "1", failed)
    assert intent.our_status == ours


def test_an_object_that_is_not_an_intent_is_refused() -> None:
    with pytest.raises(ValueError, match="payment_intent"):
        Intent.from_json({"object": "charge", "id": "ch_1"})
    intent = Intent.from_json({"object": "payment_intent", "id": "pi_1", "metadata": None})
    assert (intent.order_id, intent.amount, intent.failed) == ("", 0, False)


def test_signatures_are_checked_as_stripe_checks_them() -> None:
    now = 1_800_000_000
    verify_signature(BODY, sign(BODY, secret=SECRET, timestamp=now), secret=SECRET, tolerance=300,
                     now=now + 300)  # fmt: skip
    header = sign(BODY, secret=SECRET, timestamp=now)
    for bad, when in [
        (header, now + 301),  # too old
        (sign(BODY, secret="whsec_other", timestamp=now), now),
        (header.replace("v1=", "v0="), now),
        ("", now), ("t=,v1=abc", now), (f"v1={header.split('v1=')[1]}", now),
    ]:  # fmt: skip
        with pytest.raises(DomainError) as refused:
            verify_signature(BODY, bad, secret=SECRET, tolerance=300, now=when)
        assert refused.value.error == "invalid_signature"
        assert refused.value.status_code == 400
    with pytest.raises(DomainError):
        verify_signature(BODY + b" ", header, secret=SECRET, tolerance=300, now=now)
    assert sign(BODY, secret=SECRET).startswith(f"t={int(time.time())}"[:8])


def test_keys_differ_per_order_creation_and_attempt() -> None:
    created = utcnow()
    key = payment_provider.idempotency_key(order_id=7, order_created=created, attempt=1)
    assert key.startswith("order-7-")
    assert key.endswith("-pay-1")
    assert key != payment_provider.idempotency_key(order_id=7, order_created=created, attempt=2)


def test_a_refused_key_or_a_foreign_intent_is_503_and_logged(
    make_app: Callable[..., Flask], stripe_stand_in: StripeStandIn
) -> None:
    with make_app(**stripe_stand_in.settings(STRIPE_SECRET_KEY="sk_test_wrong")).app_context():
        with pytest.raises(ServiceUnavailable) as refused:
            payment_provider.create_intent(
                order_id=1, order_created=utcnow(), amount=Decimal("1.00"), currency="USD",
                attempt=1,
            )  # fmt: skip
        assert refused.value.error == "provider_unavailable"
    with make_app(**stripe_stand_in.settings()).app_context():
        created = utcnow()
        first = payment_provider.create_intent(
            order_id=1, order_created=created, amount=Decimal("1.00"), currency="USD", attempt=1
        )
        assert payment_provider.retrieve_intent(first.id) == first
        with pytest.raises(ServiceUnavailable):  # the same key, other parameters: 400 at Stripe
            payment_provider.create_intent(
                order_id=1, order_created=created, amount=Decimal("2.00"), currency="USD",
                attempt=1,
            )  # fmt: skip
        with pytest.raises(ServiceUnavailable):
            payment_provider.retrieve_intent("pi_missing")
        with pytest.raises(BusinessRuleViolation) as unpayable:
            payment_provider.create_intent(
                order_id=2, order_created=created, amount=Decimal("1.50"), currency="JPY",
                attempt=1,
            )  # fmt: skip
        assert unpayable.value.error == "amount_not_payable"
        stripe_stand_in.intents[first.id]["metadata"] = {"order_id": "99"}
        with pytest.raises(ServiceUnavailable):  # an intent made for another order is not ours
            payment_provider.create_intent(
                order_id=1, order_created=created, amount=Decimal("1.00"), currency="USD",
                attempt=1,
            )  # fmt: skip
