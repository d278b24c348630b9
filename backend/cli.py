"""Project CLI commands, registered on the app: `flask --app wsgi <command>`."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from backend import devserver
from backend.db import db, migrate
from backend.redis_store import redis_url


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, envvar="PORT", help="Port to bind.")
@with_appcontext
def dev_command(host: str, port: int) -> None:
    """Run web, worker and cron together, with an embedded Redis if REDIS_URL is unset."""
    with db.connection_context():
        applied = migrate(db.obj)
    click.echo(f"migrations applied: {', '.join(applied) or 'none pending'}")
    url = redis_url(current_app)
    base = f"http://{host}:{port}"
    commands = devserver.dev_commands(host, port)

    def announce() -> None:
        click.echo(f"API docs: {base}/api/v1/docs   (OpenAPI: {base}/api/v1/openapi.json)")
        click.echo(f"Redis: {url}   Press Ctrl-C to stop.")

    sys.exit(devserver.supervise(commands, devserver.child_environment(url), announce))


def init_app(app: Flask) -> None:
    """Register the project's CLI commands."""
    app.cli.add_command(dev_command)
