"""The optimisation layer: everything done only to be fast, installed in one place.

The main path (blueprints → services → models) is complete and correct without
this package. `create_app` calls `init_app`, which installs each optimisation
when `OPTIMIZATIONS` is on (the default in production; `OPTIMIZATIONS=0` turns
the whole layer off, `OPTIMIZATIONS=1` turns it on in development). Each module
here says what it speeds up, what it costs, and the benchmark row in
`bench/rest.py` that keeps it.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Install every optimisation when `app.config["OPTIMIZATIONS"]` is true."""
    if not app.config.get("OPTIMIZATIONS"):
        return
    from backend.optimizations import authenticated

    authenticated.init_app(app)
