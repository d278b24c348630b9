"""Whether the optimisation layer is on for an app (the `OPTIMIZATIONS` setting)."""

from __future__ import annotations


def enabled_in(app: object) -> bool:
    """Whether `app` is a Flask app with `OPTIMIZATIONS` on.

    Anything else is off: gunicorn hands its hooks a stand-in app when loading failed.
    """
    config = getattr(app, "config", None)
    return isinstance(config, dict) and bool(config.get("OPTIMIZATIONS"))
