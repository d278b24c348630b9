"""What every job needs: the Flask app, built once per worker process."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from flask import Flask, current_app, has_app_context

P = ParamSpec("P")
R = TypeVar("R")

_app: Flask | None = None


def get_app() -> Flask:
    """Return this process's app, creating it from the environment on first use."""
    global _app
    if _app is None:
        from backend import create_app

        _app = create_app()
    return _app


@contextmanager
def app_context() -> Iterator[Flask]:
    """Run the block inside an app context (the current one if already inside one)."""
    if has_app_context():
        yield current_app._get_current_object()  # type: ignore[attr-defined]
        return
    app = get_app()
    with app.app_context():
        yield app


def job(func: Callable[P, R]) -> Callable[P, R]:
    """Make `func` a job: it runs inside the app context, with its own DB connection."""

    @functools.wraps(func)
    def run_in_app(*args: P.args, **kwargs: P.kwargs) -> R:
        with app_context():
            return func(*args, **kwargs)

    return run_in_app
