"""The optimisation layer: everything done only to be fast, installed in one place.

The main path (blueprints → services → models) is complete and correct without
this package. `create_app` calls `init_app` last, which installs each
optimisation when `OPTIMIZATIONS` is on (the default in production;
`OPTIMIZATIONS=0` turns the whole layer off, `OPTIMIZATIONS=1` turns it on in
development). Each module says what it speeds up, the benchmark row in
`bench/rest.py` that keeps it, what it costs, and why it is correct:

- `catalog_cache`: whole responses of the public catalog reads, per process,
  checked against the catalog's version in Redis (built on `local_cache`);
- `replay`: the public ones among them answered in front of Flask, with the
  bytes the whole app sent;
- `authenticated`: Bearer requests verified once per process (PyJWT with the
  library's settings), the session still checked in Redis on every request,
  and `GET /orders/{id}` read with one prepared query;
- `order_cache`: an owner's `GET /orders/{id}` answered again with the bytes
  sent last time, while the order's version in Redis still matches;
- `stream_open`: Bearer event streams opened in front of Flask (a reconnect
  storm's cost per stream), with the main path's checks and body;
- `hub_positions`: streams start from the newest event ids the hub knows
  instead of reading them from Redis;
- `round_trips`: Redis round trips of callers arriving together sent as one
  pipeline (`redis_store.round_trip`);
- `pool`: pooled PostgreSQL connections handed out without `SELECT 1` when
  they were returned under a second ago;
- `connection_state`: Peewee's per-thread connection state in a context
  variable, so that asking whether a connection is open allocates nothing;
- `gc_freeze`: the loaded app kept out of full GC collections, and
  `accept_batch`: a few connections accepted per wake-up of a gevent worker
  (both called from `backend.gunicorn_conf.post_worker_init`, not from here;
  `switch` says whether the layer is on for the app a worker loaded).
"""

from __future__ import annotations

from flask import Flask

from backend.optimizations import (
    authenticated,
    catalog_cache,
    connection_state,
    hub_positions,
    order_cache,
    pool,
    replay,
    round_trips,
    stream_open,
)


def init_app(app: Flask) -> None:
    """Install every optimisation when `app.config["OPTIMIZATIONS"]` is true."""
    if not app.config.get("OPTIMIZATIONS"):
        return
    pool.init_app(app)
    connection_state.init_app(app)  # after `pool`: rebinds what it built
    catalog = catalog_cache.init_app(app)
    tokens, seen = authenticated.init_app(app)
    order_cache.init_app(app, tokens, seen)
    round_trips.init_app(app)
    hub_positions.init_app(app)
    # Last: these two stand in for the request hooks installed so far.
    stream_open.init_app(app, tokens)
    replay.init_app(app, catalog)  # outermost: anonymous reads never reach the others
