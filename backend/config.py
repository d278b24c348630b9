"""Configuration read from the environment, with safe defaults for development.

Every setting can come from an environment variable of the same name (or a
`.env` file in the working directory). In production (`ENV=production`) the
app refuses to start with a missing or default secret, or without Redis
(`REDIS_URL`, or `REDIS_SENTINELS` with `REDIS_SENTINEL_MASTER`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"

DEV_SECRET_KEY = "dev-only-secret-key-not-for-production-use-000"  # noqa: S105
DEV_JWT_SECRET_KEY = "dev-only-jwt-secret-key-not-for-production-000"  # noqa: S105
KNOWN_DEFAULT_SECRETS = frozenset(
    {DEV_SECRET_KEY, DEV_JWT_SECRET_KEY, "changeme", "change-me", "secret", "dev", "test"}
)
MIN_SECRET_LENGTH = 32
ENVIRONMENTS = ("development", "production")
MAX_UPLOAD_URL_TTL_SECONDS = 15 * 60  # an upload URL is a bearer credential in a URL: short-lived


class ConfigError(RuntimeError):
    """The configuration is unusable; the message names every problem."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


OAUTH_PROVIDERS = ("GITHUB", "GOOGLE", "AZURE", "AUTH0")
OAUTH_DEFAULTS = {
    "OAUTH_GITHUB_API_URL": "https://api.github.com",
    "OAUTH_GITHUB_AUTHORIZE_URL": "https://github.com/login/oauth/authorize",
    "OAUTH_GITHUB_TOKEN_URL": "https://github.com/login/oauth/access_token",  # noqa: S105
    "OAUTH_GOOGLE_ISSUER": "https://accounts.google.com",
    "OAUTH_GOOGLE_TOKENINFO_URL": "https://oauth2.googleapis.com/tokeninfo",
}


def _oauth(env: Mapping[str, str]) -> dict[str, Any]:
    """Provider sign-in: a provider is enabled when its `OAUTH_P_CLIENT_ID` is set."""
    config: dict[str, Any] = {}
    for provider in OAUTH_PROVIDERS:
        parts = ("CLIENT_ID", "CLIENT_SECRET") + (() if provider == "GITHUB" else ("ISSUER",))
        for part in parts:
            name = f"OAUTH_{provider}_{part}"
            config[name] = env.get(name) or OAUTH_DEFAULTS.get(name)
    for name, default in OAUTH_DEFAULTS.items():
        config[name] = env.get(name) or default
    config["OAUTH_REDIRECT_URIS"] = _list(env.get("OAUTH_REDIRECT_URIS", ""))
    config["OAUTH_PROVIDER_TIMEOUT_SECONDS"] = _float(env, "OAUTH_PROVIDER_TIMEOUT_SECONDS", 5.0)
    config["OAUTH_HANDLE_TTL_SECONDS"] = _int(env, "OAUTH_HANDLE_TTL_SECONDS", 600)
    return config


def _payments(env: Mapping[str, str]) -> dict[str, Any]:
    """Payments through Stripe's API: enabled when `STRIPE_SECRET_KEY` is set."""
    return {
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY") or None,
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET") or None,
        "STRIPE_API_BASE": (env.get("STRIPE_API_BASE") or "https://api.stripe.com").rstrip("/"),
        "STRIPE_TIMEOUT_SECONDS": _float(env, "STRIPE_TIMEOUT_SECONDS", 10.0),
        "STRIPE_WEBHOOK_TOLERANCE_SECONDS": _int(env, "STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300),
        "PAYMENTS_RECONCILE_AFTER_MINUTES": _int(env, "PAYMENTS_RECONCILE_AFTER_MINUTES", 10),
        "PAYMENTS_RECONCILE_BATCH": _int(env, "PAYMENTS_RECONCILE_BATCH", 100),
    }


def _sentinels(raw: str) -> list[tuple[str, int]]:
    """Parse `host:port,host:port` (IPv6 hosts in brackets: `[::1]:26379`)."""
    addresses = []
    for item in _list(raw):
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_SENTINELS must be host:port,host:port,..., got {item!r}")
        addresses.append((host, int(port)))
    return addresses


def _redis(env: Mapping[str, str]) -> dict[str, Any]:
    """Where Redis is: `REDIS_URL`, or sentinels (which take precedence when set)."""
    sentinels = _sentinels(env.get("REDIS_SENTINELS", ""))
    master = env.get("REDIS_SENTINEL_MASTER") or None
    if sentinels and not master:
        raise ConfigError("REDIS_SENTINEL_MASTER must name the master when REDIS_SENTINELS is set")
    return {
        "REDIS_URL": env.get("REDIS_URL") or None,
        "REDIS_SENTINELS": sentinels,
        "REDIS_SENTINEL_MASTER": master,
        "REDIS_SENTINEL_PASSWORD": env.get("REDIS_SENTINEL_PASSWORD") or None,
        "REDIS_PASSWORD": env.get("REDIS_PASSWORD") or None,
        "REDIS_DB": _int(env, "REDIS_DB", 0),
        "REDIS_FAILOVER_WAIT_SECONDS": _float(env, "REDIS_FAILOVER_WAIT_SECONDS", 60.0),
    }


def _outside(env: Mapping[str, str]) -> dict[str, Any]:
    """Calls to outside services: the connect timeout and the shared circuit breaker."""
    return {
        "OUTSIDE_CONNECT_TIMEOUT_SECONDS": _float(env, "OUTSIDE_CONNECT_TIMEOUT_SECONDS", 3.0),
        "PROVIDER_BREAKER_FAILURES": _int(env, "PROVIDER_BREAKER_FAILURES", 5),
        "PROVIDER_BREAKER_COOLDOWN_SECONDS": _float(env, "PROVIDER_BREAKER_COOLDOWN_SECONDS", 30.0),
    }


WEBHOOKS_DEFAULT_SCHEDULE = "5,30,120,600,3600,21600,43200"


def _schedule(env: Mapping[str, str], name: str, default: str) -> list[float]:
    raw = env.get(name) or default
    try:
        delays = [float(item) for item in _list(raw)]
    except ValueError as exc:
        raise ConfigError(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if not delays or min(delays) < 0:
        raise ConfigError(f"{name} must list at least one delay, none negative, got {raw!r}")
    return delays


def _webhooks(env: Mapping[str, str]) -> dict[str, Any]:
    """Outgoing webhooks: timeouts, retries, the SSRF guard, the dispatcher and disabling."""
    schedule = _schedule(env, "WEBHOOKS_RETRY_SCHEDULE", WEBHOOKS_DEFAULT_SCHEDULE)
    return {
        "WEBHOOKS_TIMEOUT_SECONDS": _float(env, "WEBHOOKS_TIMEOUT_SECONDS", 10.0),
        "WEBHOOKS_RETRY_SCHEDULE": schedule,
        "WEBHOOKS_MAX_ATTEMPTS": _int(env, "WEBHOOKS_MAX_ATTEMPTS", len(schedule) + 1),
        "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": _flag(
            env, "WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default=False
        ),
        "WEBHOOKS_LEASE_SECONDS": _float(env, "WEBHOOKS_LEASE_SECONDS", 60.0),
        "WEBHOOKS_CONCURRENCY": _int(env, "WEBHOOKS_CONCURRENCY", 32),
        "WEBHOOKS_SWEEP_INTERVAL_SECONDS": _int(env, "WEBHOOKS_SWEEP_INTERVAL_SECONDS", 5),
        "WEBHOOKS_DISABLE_AFTER_FAILURES": _int(env, "WEBHOOKS_DISABLE_AFTER_FAILURES", 20),
        "WEBHOOKS_DISABLE_AFTER_SECONDS": _float(env, "WEBHOOKS_DISABLE_AFTER_SECONDS", 86400.0),
    }


def _webhook_problems(config: Mapping[str, Any]) -> list[str]:
    timeout = config.get("WEBHOOKS_TIMEOUT_SECONDS", 10.0)
    problems = []
    if timeout <= 0:
        problems.append("WEBHOOKS_TIMEOUT_SECONDS must be above 0")
    if config.get("WEBHOOKS_LEASE_SECONDS", 60.0) <= timeout:
        problems.append("WEBHOOKS_LEASE_SECONDS must be longer than WEBHOOKS_TIMEOUT_SECONDS")
    if config.get("WEBHOOKS_MAX_ATTEMPTS", 8) < 1 or config.get("WEBHOOKS_CONCURRENCY", 32) < 1:
        problems.append("WEBHOOKS_MAX_ATTEMPTS and WEBHOOKS_CONCURRENCY must be at least 1")
    return problems


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "ENV": env.get("ENV", "development"),
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRET_KEY),
        "JWT_SECRET_KEY": env.get("JWT_SECRET_KEY", DEV_JWT_SECRET_KEY),
        "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'app.db'}",
        "DATABASE_POOL_SIZE": _int(env, "DATABASE_POOL_SIZE", 20),
        "DATABASE_POOL_TRUST_SECONDS": _float(env, "DATABASE_POOL_TRUST_SECONDS", 1.0),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO").upper(),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 16 * 1024 * 1024),
        "READYZ_TIMEOUT": float(env.get("READYZ_TIMEOUT", "2.0")),
        "MAIL_URL": env.get("MAIL_URL") or None,
        "MAIL_FROM": env.get("MAIL_FROM", "flet-backend <no-reply@localhost>"),
        "MAIL_OUTBOX_DIR": env.get("MAIL_OUTBOX_DIR") or str(VAR_DIR / "mail"),
        "ACCESS_TOKEN_TTL_SECONDS": _int(env, "ACCESS_TOKEN_TTL_SECONDS", 15 * 60),
        "REFRESH_TOKEN_TTL_SECONDS": _int(env, "REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600),
        "REFRESH_REUSE_GRACE_SECONDS": _int(env, "REFRESH_REUSE_GRACE_SECONDS", 10),
        "RATELIMIT_ENABLED": env.get("RATELIMIT_ENABLED", "1") not in ("0", "false", "no"),
        "RATELIMIT_LOGIN_PER_IP": env.get("RATELIMIT_LOGIN_PER_IP", "30/minute"),
        "RATELIMIT_LOGIN_PER_EMAIL": env.get("RATELIMIT_LOGIN_PER_EMAIL", "5/minute;30/hour"),
        "RATELIMIT_REGISTER_PER_IP": env.get("RATELIMIT_REGISTER_PER_IP", "20/hour"),
        "RATELIMIT_FORGOT_PER_IP": env.get("RATELIMIT_FORGOT_PER_IP", "10/hour"),
        "RATELIMIT_FORGOT_PER_EMAIL": env.get("RATELIMIT_FORGOT_PER_EMAIL", "3/hour"),
        "RATELIMIT_OAUTH_PER_IP": env.get("RATELIMIT_OAUTH_PER_IP", "30/minute"),
        "RATELIMIT_OAUTH_COMPLETE_PER_IP": env.get("RATELIMIT_OAUTH_COMPLETE_PER_IP", "120/minute"),
        "RATELIMIT_WRITES": env.get("RATELIMIT_WRITES", "300/minute"),
        "SSE_RETRY_MS": _int(env, "SSE_RETRY_MS", 3000),
        "SSE_HEARTBEAT_SECONDS": _int(env, "SSE_HEARTBEAT_SECONDS", 15),
        "SSE_MAX_LIFETIME_SECONDS": _int(env, "SSE_MAX_LIFETIME_SECONDS", 3600),
        "SSE_QUEUE_SIZE": _int(env, "SSE_QUEUE_SIZE", 256),
        "SSE_SESSION_CHECK_SECONDS": _int(env, "SSE_SESSION_CHECK_SECONDS", 60),
        "EVENTS_MAXLEN": _int(env, "EVENTS_MAXLEN", 1000),
        "EVENTS_TTL_SECONDS": _int(env, "EVENTS_TTL_SECONDS", 24 * 3600),
        "SPOOL_DIR": env.get("SPOOL_DIR") or str(VAR_DIR / "spool"),
        "IMPORT_MAX_BYTES": _int(env, "IMPORT_MAX_BYTES", 100 * 1024 * 1024),
        "FILES_DIR": env.get("FILES_DIR") or str(VAR_DIR / "files"),
        "FILES_STORAGE_URL": env.get("FILES_STORAGE_URL") or None,  # unset: FILES_DIR
        "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID") or None,
        "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY") or None,
        "FILES_DOWNLOAD_REDIRECT": _flag(env, "FILES_DOWNLOAD_REDIRECT", default=False),
        "FILES_DOWNLOAD_URL_TTL_SECONDS": _int(env, "FILES_DOWNLOAD_URL_TTL_SECONDS", 60),
        "FILES_MAX_BYTES": _int(env, "FILES_MAX_BYTES", 100 * 1024 * 1024),
        "FILES_ALLOWED_TYPES": _list(
            env.get("FILES_ALLOWED_TYPES")
            or "image/png,image/jpeg,image/gif,image/webp,text/csv,application/pdf"
        ),
        "FILES_MAX_PIXELS": _int(env, "FILES_MAX_PIXELS", 40_000_000),
        "FILES_ORPHAN_AFTER_HOURS": _int(env, "FILES_ORPHAN_AFTER_HOURS", 24),
        "FILES_EXPORT_TTL_HOURS": _int(env, "FILES_EXPORT_TTL_HOURS", 24),
        "UPLOAD_URL_TTL_SECONDS": _int(env, "UPLOAD_URL_TTL_SECONDS", MAX_UPLOAD_URL_TTL_SECONDS),
        "FILES_ACCEL_REDIRECT_PREFIX": env.get("FILES_ACCEL_REDIRECT_PREFIX") or None,
        "WORKER_HEARTBEAT_SECONDS": _int(env, "WORKER_HEARTBEAT_SECONDS", 10),
        "JOBS_RETRY_WINDOW_HOURS": _int(env, "JOBS_RETRY_WINDOW_HOURS", 24),
        "PURGE_TOKENS_AFTER_DAYS": _int(env, "PURGE_TOKENS_AFTER_DAYS", 7),
        "PURGE_SESSIONS_AFTER_DAYS": _int(env, "PURGE_SESSIONS_AFTER_DAYS", 30),
        "PURGE_NOTIFICATIONS_AFTER_DAYS": _int(env, "PURGE_NOTIFICATIONS_AFTER_DAYS", 90),
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        "DASHBOARD_COOKIE_SECONDS": _int(env, "DASHBOARD_COOKIE_SECONDS", 15 * 60),
        "PROXY_FIX_X_FOR": _int(env, "PROXY_FIX_X_FOR", 0),
        "CORS_ORIGINS": _list(env.get("CORS_ORIGINS", "")),
        "OPTIMIZATIONS": _flag(env, "OPTIMIZATIONS", default=env.get("ENV") == "production"),
        **_redis(env),
        **_oauth(env),
        **_payments(env),
        **_outside(env),
        **_webhooks(env),
    }


def _secret_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        value = config.get(name) or ""
        if not value:
            problems.append(f"{name} is not set")
        elif value in KNOWN_DEFAULT_SECRETS:
            problems.append(f"{name} is a default value")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{name} is shorter than {MIN_SECRET_LENGTH} characters")
    return problems + _payment_secret_problems(config)


def _payment_secret_problems(config: Mapping[str, Any]) -> list[str]:
    """With payments enabled (`STRIPE_SECRET_KEY` set), both Stripe secrets must be real."""
    if not config.get("STRIPE_SECRET_KEY"):
        return []
    problems = []
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        value = config.get(name) or ""
        if not value:
            problems.append(f"{name} is not set (payments are enabled)")
        elif value in KNOWN_DEFAULT_SECRETS:
            problems.append(f"{name} is a default value")
    return problems


def validate(config: Mapping[str, Any]) -> None:
    """Raise `ConfigError` naming every setting that is unsafe or invalid."""
    if config["ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"ENV must be one of {', '.join(ENVIRONMENTS)}, got {config['ENV']!r}")
    ttl = config.get("UPLOAD_URL_TTL_SECONDS", MAX_UPLOAD_URL_TTL_SECONDS)
    if not 1 <= ttl <= MAX_UPLOAD_URL_TTL_SECONDS:
        raise ConfigError(
            f"UPLOAD_URL_TTL_SECONDS must be between 1 and {MAX_UPLOAD_URL_TTL_SECONDS}, got {ttl}"
        )
    if webhook_problems := _webhook_problems(config):
        raise ConfigError("; ".join(webhook_problems))
    if config["ENV"] != "production":
        return
    problems = _secret_problems(config)
    if not config.get("REDIS_URL") and not config.get("REDIS_SENTINELS"):
        problems.append(
            "REDIS_URL is not set, nor REDIS_SENTINELS (the embedded Redis is for development only)"
        )
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the app configuration: `.env`, then the environment, then `overrides`.

    Raises `ConfigError` when a value is malformed or unsafe for production.
    """
    dotenv_path = Path.cwd() / ".env"
    if dotenv_path.is_file():
        load_dotenv(dotenv_path, override=False)
    config = _from_environment(os.environ)
    config.update(overrides or {})
    validate(config)
    return config
