"""Payments: paying an order through the provider, and applying what the provider says.

Paying (`pay_order`) asks the provider for a PaymentIntent first and only then
writes the `payment` row, so a provider that cannot be reached leaves nothing
behind (503 `provider_unavailable`). It never charges twice and never makes
two rows: the provider's idempotency key is derived from the order and the
attempt, so a retry (or a concurrent request) gets the same intent back, and
the row is one per order (a unique index, inserted with ON CONFLICT DO
NOTHING, then read back).

What the provider later says about an intent comes by webhook
(`handle_webhook`: signature checked, each event id applied once, recorded in
`provider_event` in the transaction that applies it) or, when a webhook went
missing, by asking it (`reconcile`, on the cron schedule). Both go through
`_apply`, which moves the payment along its life cycle
(`PAYMENT_TRANSITIONS`; a late or repeated word changes nothing) and, on
success, confirms the order through the order life cycle
(`orders.confirm_paid`). `payment.succeeded` and `payment.failed` go to the
owner (`user:{id}`) and `admin`, with a notification for the owner.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import structlog
from flask import current_app

from backend.channels import ADMIN, user_channel
from backend.db import db, lock_for_update
from backend.errors import BusinessRuleViolation, DomainError
from backend.events import publish_after_commit
from backend.models import (
    OPEN_PAYMENT_STATUSES,
    PAYMENT_TRANSITIONS,
    Order,
    Payment,
    ProviderEvent,
    User,
    utcnow,
)
from backend.schemas.payments import PaymentSchema
from backend.services import notifications, orders, payment_provider, webhooks
from backend.services.payment_provider import Intent

log = structlog.get_logger(__name__)

PROVIDER = payment_provider.SERVICE
# The provider's event types we act on, and the payment status each means.
EVENT_STATUSES = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.processing": "processing",
    "payment_intent.canceled": "cancelled",
}
# The statuses announced as events (and notified), with the notification's title.
ANNOUNCED = {
    "succeeded": ("payment.succeeded", "Payment received"),
    "failed": ("payment.failed", "Your payment did not go through"),
}
# Reconciliation also asks about failed payments: a retry's success may be the webhook missed.
RECONCILED_STATUSES = (*OPEN_PAYMENT_STATUSES, "failed")
_SCHEMA = PaymentSchema()


def pay_order(*, user: User, order_id: int) -> Payment:
    """Create the payment of the caller's pending order, or return the one it has.

    A cancelled intent is replaced by a new one (the next attempt); a failed
    one is returned as it is (the customer may try again with it).

    Raises `NotFound` (not the caller's own order), `BusinessRuleViolation`
    (409 `order_not_payable`: not pending) and `ServiceUnavailable`
    (`provider_unavailable` with `Retry-After`, `payments_not_configured`).
    """
    order = orders.get_order(user=user, order_id=order_id, owner_only=True)
    if order.status != "pending":
        raise BusinessRuleViolation(
            f"Only a pending order can be paid; this one is {order.status}.",
            error="order_not_payable",
        )
    previous: Payment | None = order.payment
    if previous is not None and previous.status != "cancelled":
        return previous
    if not payment_provider.is_enabled():
        raise payment_provider.not_configured()
    attempt = 1 if previous is None else previous.attempt + 1
    intent = payment_provider.create_intent(
        order_id=order.id, order_created=order.created_at, amount=order.total,
        currency=order.currency, attempt=attempt,
    )  # fmt: skip
    return _store(order, previous, intent, attempt)


def _store(order: Order, previous: Payment | None, intent: Intent, attempt: int) -> Payment:
    """Write the intent as the order's payment (once, whoever else writes it at the same time)."""
    values = {
        "provider": PROVIDER,
        "provider_payment_id": intent.id,
        "status": intent.our_status,
        "amount": order.total,
        "currency": order.currency,
        "client_secret": intent.client_secret,
        "attempt": attempt,
    }
    with db.atomic():
        if previous is None:
            Payment.insert(order=order.id, **values).on_conflict_ignore().execute()
        else:  # only over the cancelled attempt this request saw
            Payment.update(**values, updated_at=utcnow(), checked_at=None).where(
                (Payment.id == previous.id)
                & (Payment.attempt == previous.attempt)
                & (Payment.status == "cancelled")
            ).execute()
        orders.changed_after_commit(order.id)
    return Payment.get(Payment.order == order.id)


def handle_webhook(*, payload: bytes, signature: str | None) -> str:
    """Apply one provider event (the webhook's raw body) once; return what happened.

    `applied` (the payment changed), `unchanged` (already known, or a late
    word), `duplicate` (this event was applied before) or `ignored` (a type
    we do not act on, or an intent that is not one of our payments).

    Raises `DomainError` (400 `invalid_signature`, nothing changed) for a bad,
    missing or too old signature or a body that is not an event, and
    `ServiceUnavailable` (`payments_not_configured`) without a webhook secret.
    """
    config = current_app.config
    secret = config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise payment_provider.not_configured()
    payment_provider.verify_signature(
        payload, signature, secret=secret, tolerance=int(config["STRIPE_WEBHOOK_TOLERANCE_SECONDS"])
    )
    event_id, event_type, intent = _parse_event(payload)
    status = EVENT_STATUSES.get(event_type)
    if status is None or intent is None:
        return "ignored"
    with db.atomic():
        fresh = (
            ProviderEvent.insert(provider=PROVIDER, event_id=event_id, event_type=event_type)
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        if not fresh:
            return "duplicate"
        payment = _locked(Payment.provider_payment_id == intent.id)
        if payment is None:
            log.warning("stripe_event_for_unknown_intent", event_id=event_id, intent=intent.id)
            return "ignored"
        return "applied" if _apply(payment, status) else "unchanged"


def _parse_event(payload: bytes) -> tuple[str, str, Intent | None]:
    """The event's id, type and PaymentIntent (None when the object is something else)."""
    try:
        event: Any = json.loads(payload)
        event_id, event_type = str(event["id"]), str(event["type"])
        obj = event["data"]["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DomainError("The body is not a provider event.", error="invalid_event") from exc
    try:
        return event_id, event_type, Intent.from_json(obj)
    except (ValueError, KeyError, TypeError):
        return event_id, event_type, None


def _locked(condition: Any) -> Payment | None:
    """The payment matching `condition` with its order, locked until the transaction ends."""
    query = Payment.select(Payment, Order).join(Order).where(condition)
    found: Payment | None = lock_for_update(query).first()
    return found


def _apply(payment: Payment, status: str) -> bool:
    """Move `payment` to `status` if its life cycle allows; announce it. Return whether it moved.

    Call inside a transaction, with the payment locked (`_locked`). On
    `succeeded` the order is confirmed in the same transaction.
    """
    if status not in PAYMENT_TRANSITIONS[payment.status]:
        return False
    moved = (
        Payment.update(status=status, updated_at=utcnow())
        .where((Payment.id == payment.id) & (Payment.status == payment.status))
        .execute()
    )
    if moved != 1:
        return False
    orders.changed_after_commit(payment.order_id)
    payment.status = status
    if status == "succeeded":
        orders.confirm_paid(order_id=payment.order_id)
    if status in ANNOUNCED:
        _announce(payment, ANNOUNCED[status][0])
        _notify(payment, status)
    return True


def _announce(payment: Payment, event: str) -> None:
    """Publish `event` (`payment.succeeded|failed`) with the payment, to its owner and admins.

    The one place a payment event goes out; subscribed webhooks get it recorded
    in the same transaction.
    """
    payload = _SCHEMA.dump(payment)
    publish_after_commit(user_channel(payment.order.user_id), event, payload)
    publish_after_commit(ADMIN, event, payload)
    webhooks.record_event(event_type=event, data=payload)


def _notify(payment: Payment, status: str) -> None:
    amount = f"{payment.amount} {payment.currency}"
    bodies = {
        "succeeded": f"We received {amount} for order #{payment.order_id}.",
        "failed": f"The payment of {amount} for order #{payment.order_id} failed; "
        "you can try again.",
    }
    notifications.notify(
        user_id=payment.order.user_id,
        kind=ANNOUNCED[status][0],
        title=ANNOUNCED[status][1],
        body=bodies[status],
        data={"order_id": payment.order_id, "payment_id": payment.id, "status": status},
    )


def reconcile(*, older_than: timedelta, limit: int) -> dict[str, int]:
    """Ask the provider about payments left open for `older_than`; apply what it says.

    For when a webhook never came: the payments still `requires_payment`,
    `processing` or `failed` with no change or check for `older_than`, at
    most `limit` of them, least recently checked first. Each answer goes
    through the webhook's own path (`_apply`), so a later webhook for the
    same change does nothing. Stops at the first provider failure.

    Returns `{checked, changed, unreachable}`.
    """
    cutoff = utcnow() - older_than
    stale = (Payment.updated_at < cutoff) & (
        Payment.checked_at.is_null() | (Payment.checked_at < cutoff)
    )
    due = list(
        Payment.select(Payment.id)
        .where(Payment.status.in_(RECONCILED_STATUSES) & stale)
        .order_by(Payment.checked_at.asc(nulls="first"), Payment.id)
        .limit(limit)
    )
    counts = {"checked": 0, "changed": 0, "unreachable": 0}
    for row in due:
        if not _reconcile_one(row.id, counts):
            break
    return counts


def _reconcile_one(payment_id: int, counts: dict[str, int]) -> bool:
    """Check one payment with the provider; return False when the provider cannot be reached."""
    payment = Payment.get_by_id(payment_id)
    try:
        intent = payment_provider.retrieve_intent(payment.provider_payment_id)
    except DomainError:
        counts["unreachable"] += 1
        return False
    counts["checked"] += 1
    with db.atomic():
        locked = _locked(Payment.id == payment_id)
        if locked is not None and locked.provider_payment_id == intent.id:
            Payment.update(checked_at=utcnow()).where(Payment.id == payment_id).execute()
            if _apply(locked, intent.our_status):
                counts["changed"] += 1
    return True
