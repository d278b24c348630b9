"""Human text for values and errors (one place, so screens and tests agree on wording)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flet_backend_client import ApiError, InsufficientStockError, Payment

from shop.uploads import UploadFailed


def money(amount: Decimal, currency: str) -> str:
    """Format an amount with two places and its currency, e.g. `"12.50 USD"`."""
    return f"{amount.quantize(Decimal('0.01'))} {currency}"


PAYMENT_STATES = {
    "requires_payment": "waiting for the card",
    "processing": "processing",
    "succeeded": "paid",
    "failed": "failed, try again",
    "cancelled": "cancelled",
}


def payment_label(payment: Payment | None) -> str:
    """The payment line an order shows, e.g. `"Payment: paid (12.50 USD)"`."""
    if payment is None:
        return "Payment: not paid yet"
    state = PAYMENT_STATES.get(payment.status, payment.status)
    return f"Payment: {state} ({money(payment.amount, payment.currency)})"


def payment_started(payment: Payment) -> str:
    """What the app says once the provider has the payment (the card step is the provider's).

    The app holds the `client_secret` the provider's card form needs; it does
    not take card details itself, so it says where the payment stands.
    """
    if not payment.client_secret:
        return f"Payment {payment.provider_payment_id} is {payment.status}."
    return (
        f"Payment {payment.provider_payment_id} is ready for the card step "
        f"({money(payment.amount, payment.currency)}); this order updates when it is paid."
    )


def stock_label(stock: int) -> str:
    """The stock line a product shows, e.g. `"Stock: 12"`."""
    return f"Stock: {stock}"


def shortage_message(exc: InsufficientStockError, names: Mapping[int, str]) -> str:
    """Explain a 409 `insufficient_stock`, naming each product that is short.

    Args:
        exc: The error; `errors["items"]` lists `{product_id, requested, available}`.
        names: Product names by id (from the cart).

    Returns:
        One sentence, e.g. `"Not enough stock: Green tea (requested 5, available 2)."`
    """
    items: Any = exc.errors.get("items") if isinstance(exc.errors, Mapping) else None
    parts = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        pid = int(item.get("product_id") or 0)
        name = names.get(pid, f"product {pid}")
        parts.append(
            f"{name} (requested {item.get('requested')}, available {item.get('available')})"
        )
    if not parts:
        return f"Not enough stock: {exc.message}"
    return "Not enough stock: " + "; ".join(parts) + "."


def error_message(exc: Exception) -> str:
    """One line for any error an API call raised."""
    if isinstance(exc, ApiError):
        return exc.message or exc.error
    if isinstance(exc, UploadFailed):
        return f"the file was not accepted ({exc})"
    return f"Cannot reach the server ({type(exc).__name__})."


def import_summary(result: Any) -> list[str]:
    """Describe an import job's result: the counts, then one line per row error.

    Args:
        result: The job's result, `{created, updated, failed, errors: [{row, field, message}]}`.

    Returns:
        Lines such as `"Created 2, updated 1, failed 1"` and `"Row 3, price: Not a valid number."`.
    """
    if not isinstance(result, Mapping):
        return []
    lines = [
        f"Created {result.get('created', 0)}, updated {result.get('updated', 0)}, "
        f"failed {result.get('failed', 0)}"
    ]
    errors = result.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping):
            lines.append(f"Row {error.get('row')}, {error.get('field')}: {error.get('message')}")
    return lines
