"""The optimisation layer's switch and its gunicorn-side part (the GC freeze)."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
from flask import Flask

from backend.config import load_config
from backend.optimizations import catalog_cache, replay
from backend.optimizations.gc_freeze import freeze_loaded_app


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, False), ({"ENV": "production"}, True), ({"ENV": "production", "OPTIMIZATIONS": "0"},
     False), ({"OPTIMIZATIONS": "1"}, True), ({"OPTIMIZATIONS": "off"}, False)],
)  # fmt: skip
def test_the_layer_is_on_in_production_unless_switched(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    monkeypatch.delenv("OPTIMIZATIONS", raising=False)
    monkeypatch.delenv("ENV", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    secrets = {"SECRET_KEY": "s" * 40, "JWT_SECRET_KEY": "j" * 40, "REDIS_URL": "redis://x"}
    assert load_config(secrets)["OPTIMIZATIONS"] is expected


def test_off_installs_nothing(make_app: Callable[..., Flask]) -> None:
    app = make_app(OPTIMIZATIONS=False)
    assert not isinstance(app.wsgi_app, replay.ReplayMiddleware)
    assert catalog_cache.EXTENSION not in app.extensions
    assert not freeze_loaded_app(app)


def test_on_installs_every_module(make_app: Callable[..., Flask]) -> None:
    on, off = make_app(OPTIMIZATIONS=True), make_app(OPTIMIZATIONS=False)
    assert isinstance(on.wsgi_app, replay.ReplayMiddleware)
    for endpoint in catalog_cache.CATALOG_READS:  # wrapped from outside, the view unchanged
        wrapped = getattr(on.view_functions[endpoint], "__wrapped__", None)
        assert wrapped is off.view_functions[endpoint]


def test_the_freeze_moves_what_is_alive_out_of_the_collections(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(OPTIMIZATIONS=True)
    try:
        assert freeze_loaded_app(app)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
    assert not freeze_loaded_app(lambda environ, start_response: [])  # gunicorn's stand-in
