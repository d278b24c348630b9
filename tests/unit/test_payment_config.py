"""Payment settings: defaults, and production's refusals once payments are enabled."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import ConfigError, load_config

STRONG = "s" * 40
NAMES = ("ENV", "SECRET_KEY", "JWT_SECRET_KEY", "REDIS_URL", "STRIPE_SECRET_KEY",
         "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in NAMES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def production(**overrides: str) -> dict[str, str]:
    return {"ENV": "production", "SECRET_KEY": STRONG, "JWT_SECRET_KEY": "j" * 40,
            "REDIS_URL": "redis://127.0.0.1:6379/0", **overrides}  # fmt: skip


def test_payments_are_off_by_default_and_point_at_stripe(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    assert config["STRIPE_SECRET_KEY"] is None
    assert config["STRIPE_API_BASE"] == "https://api.stripe.com"
    assert config["PAYMENTS_RECONCILE_AFTER_MINUTES"] == 10
    assert load_config(production())["ENV"] == "production"  # no payments, no Stripe secrets
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9999/")
    assert load_config()["STRIPE_API_BASE"] == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"STRIPE_SECRET_KEY": "sk_live_x"}, "STRIPE_WEBHOOK_SECRET is not set"),
        ({"STRIPE_SECRET_KEY": "changeme", "STRIPE_WEBHOOK_SECRET": "whsec_x"},
         "STRIPE_SECRET_KEY is a default value"),
        ({"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "secret"},
         "STRIPE_WEBHOOK_SECRET is a default value"),
    ],
)  # fmt: skip
def test_production_with_payments_needs_both_real_secrets(
    overrides: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(production(**overrides))
    assert load_config({**overrides, "ENV": "development"})["ENV"] == "development"


def test_production_with_both_secrets_is_accepted() -> None:
    config = load_config(production(STRIPE_SECRET_KEY="sk_live_x", STRIPE_WEBHOOK_SECRET="whsec_y"))
    assert config["STRIPE_WEBHOOK_SECRET"] == "whsec_y"
