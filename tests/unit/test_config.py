"""Configuration: environment, `.env`, and refusal of unsafe production settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import create_app
from backend.config import DEV_SECRET_KEY, ConfigError, load_config

STRONG = "s" * 40
STRONG_JWT = "j" * 40


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # set-then-delete so monkeypatch restores them, even when `.env` loading sets them
    for name in ("ENV", "SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL",
                 "LOG_LEVEL", "MAIL_FROM", "DATABASE_POOL_SIZE", "REDIS_SENTINELS",
                 "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "REDIS_PASSWORD",
                 "REDIS_DB"):  # fmt: skip
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def production(**overrides: str) -> dict[str, str]:
    return {"ENV": "production", "SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG_JWT,
            "REDIS_URL": "redis://127.0.0.1:6379/0", **overrides}  # fmt: skip


def test_development_defaults_work_out_of_the_box() -> None:
    config = load_config()
    assert config["ENV"] == "development"
    assert config["DATABASE_URL"].startswith("sqlite:///")
    assert config["DATABASE_URL"].endswith("var/app.db")
    assert config["REDIS_URL"] is None
    assert config["SECRET_KEY"] == DEV_SECRET_KEY


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("CORS_ORIGINS", "http://a.test, http://b.test,")
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "1024")
    config = load_config()
    assert config["DATABASE_URL"] == "postgresql://u@h/db"
    assert config["LOG_LEVEL"] == "DEBUG"
    assert config["CORS_ORIGINS"] == ["http://a.test", "http://b.test"]
    assert config["MAX_CONTENT_LENGTH"] == 1024


def test_dotenv_file_is_read_but_does_not_override_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=warning\nMAIL_FROM=shop@example.test\n")
    monkeypatch.setenv("MAIL_FROM", "env@example.test")
    config = load_config()
    assert config["LOG_LEVEL"] == "WARNING"
    assert config["MAIL_FROM"] == "env@example.test"


def test_production_with_strong_secrets_and_redis_is_accepted() -> None:
    assert load_config(production())["ENV"] == "production"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY is a default value"),
        ({"JWT_SECRET_KEY": "changeme"}, "JWT_SECRET_KEY is a default value"),
        ({"JWT_SECRET_KEY": "short-secret"}, "JWT_SECRET_KEY is shorter than 32 characters"),
        ({"REDIS_URL": ""}, "REDIS_URL is not set"),
    ],
)
def test_production_refuses_unsafe_settings_and_says_which(
    overrides: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(production(**overrides))


def test_production_names_every_problem_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "production")
    with pytest.raises(ConfigError) as excinfo:
        create_app()
    message = str(excinfo.value)
    assert "SECRET_KEY is a default value" in message
    assert "JWT_SECRET_KEY is a default value" in message
    assert "REDIS_URL is not set" in message


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="ENV must be one of"):
        load_config({"ENV": "staging"})


def test_malformed_integer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "lots")
    with pytest.raises(ConfigError, match="DATABASE_POOL_SIZE must be an integer"):
        load_config()


def test_sentinels_are_read_and_need_no_redis_url_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379, sentinel-b:26380,[fd00::3]:26381")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "shop")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-secret")
    monkeypatch.setenv("REDIS_PASSWORD", "redis-secret")
    monkeypatch.setenv("REDIS_DB", "4")
    config = load_config(production(REDIS_URL=""))
    assert config["REDIS_SENTINELS"] == [
        ("10.0.0.1", 26379), ("sentinel-b", 26380), ("fd00::3", 26381),
    ]  # fmt: skip
    assert (config["REDIS_SENTINEL_MASTER"], config["REDIS_DB"]) == ("shop", 4)
    assert config["REDIS_SENTINEL_PASSWORD"] == "sentinel-secret"
    assert config["REDIS_PASSWORD"] == "redis-secret"
    assert config["REDIS_FAILOVER_WAIT_SECONDS"] == 60.0


def test_without_sentinels_the_lists_are_empty() -> None:
    config = load_config()
    assert (config["REDIS_SENTINELS"], config["REDIS_SENTINEL_MASTER"]) == ([], None)
    assert config["REDIS_DB"] == 0


@pytest.mark.parametrize("raw", ["sentinel-a", "sentinel-a:", ":26379", "a:26379,b:port", "a:0"])
def test_malformed_sentinels_are_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", raw)
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "shop")
    with pytest.raises(ConfigError, match="REDIS_SENTINELS must be host:port"):
        load_config()


def test_sentinels_without_a_master_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379")
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_MASTER must name the master"):
        load_config()
