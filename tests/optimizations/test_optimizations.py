"""The optimisation layer's switch and its gunicorn-side part (the GC freeze)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from backend.config import load_config
from backend.optimizations import catalog_cache, replay
from backend.optimizations.gc_freeze import (
    FULL_AFTER_MIDDLE,
    THAW_SECONDS,
    SurvivorFreezer,
    freeze_loaded_app,
    freeze_survivors,
)


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


class Node:
    """A reference cycle once two of them point at each other."""

    other: Node | None = None


def a_cycle() -> Node:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return first


@pytest.fixture
def survivors_frozen() -> Iterator[Callable[[float], None]]:
    """Install `freeze_survivors` with a given thaw period; uninstall and thaw afterwards."""
    installed: list[Callable[[], None]] = []
    yield lambda thaw_every: installed.append(freeze_survivors(thaw_every))
    for uninstall in installed:
        uninstall()
    gc.unfreeze()


def test_full_collections_come_rarer_until_it_is_uninstalled() -> None:
    before = gc.get_threshold()
    uninstall = freeze_survivors()
    try:
        assert gc.get_threshold() == (before[0], before[1], FULL_AFTER_MIDDLE)
    finally:
        uninstall()
        gc.unfreeze()
    assert gc.get_threshold() == before


def test_what_survives_a_full_collection_is_frozen_young_collections_freeze_nothing(
    survivors_frozen: Callable[[float], None],
) -> None:
    survivors_frozen(THAW_SECONDS)
    gc.unfreeze()
    gc.collect(0)
    assert gc.get_freeze_count() == 0
    kept = [Node() for _ in range(1000)]
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)
    assert all(gc.is_tracked(node) for node in kept)


def test_a_cycle_that_dies_frozen_is_freed_at_the_next_thaw_only(
    survivors_frozen: Callable[[float], None],
) -> None:
    survivors_frozen(THAW_SECONDS)
    alive = a_cycle()
    cycle = weakref.ref(alive)
    gc.collect()  # alive: frozen with the other survivors
    del alive
    gc.collect()  # now garbage, but frozen: not walked
    assert cycle() is not None
    freezer = gc.callbacks[-1]
    assert isinstance(freezer, SurvivorFreezer)
    freezer.thawed_at -= THAW_SECONDS  # the thaw is due
    gc.collect()
    assert cycle() is None
    assert gc.get_freeze_count() > 0  # and what survived that one is frozen again
