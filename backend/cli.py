"""Project CLI commands, registered on the app: `flask --app wsgi <command>`."""

from __future__ import annotations

import json
import secrets
import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from backend import devserver, events
from backend.db import db, migrate
from backend.errors import DomainError
from backend.redis_store import redis_target
from backend.services import products, users


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, envvar="PORT", help="Port to bind.")
@with_appcontext
def dev_command(host: str, port: int) -> None:
    """Run web, worker and cron together, with an embedded Redis if no Redis is configured."""
    with db.connection_context():
        applied = migrate(db.obj)
    click.echo(f"migrations applied: {', '.join(applied) or 'none pending'}")
    target = redis_target(current_app)
    base = f"http://{host}:{port}"
    commands = devserver.dev_commands(host, port)

    def announce() -> None:
        click.echo(f"API docs: {base}/api/v1/docs   (OpenAPI: {base}/api/v1/openapi.json)")
        click.echo(f"Redis: {target.describe()}   Press Ctrl-C to stop.")

    env = devserver.child_environment(None if target.uses_sentinels else target.url)
    sys.exit(devserver.supervise(commands, env, announce))


@click.command("create-admin")
@click.option("--email", required=True, help="The admin's email address.")
@click.option("--password", default=None, help="Set this password (else keep or generate one).")
@with_appcontext
def create_admin_command(email: str, password: str | None) -> None:
    """Create an admin, or promote an existing user (safe to run again)."""
    try:
        user, created = users.ensure_account(email=email, password=password, role="admin")
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{'created' if created else 'promoted'} admin {user.email} (id {user.id})")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create (or reset) a demo admin and user, print their credentials; add a demo catalog."""
    for email, role in (("admin@example.com", "admin"), ("user@example.com", "user")):
        password = secrets.token_urlsafe(12)
        users.ensure_account(email=email, password=password, role=role)
        click.echo(f"{role:5}  {email}  {password}")
    click.echo(f"catalog: {products.seed_demo_catalog()} products added")


@click.command("publish-event")
@click.argument("channel")
@click.argument("event_type")
@click.argument("data", default="{}")
@with_appcontext
def publish_event_command(channel: str, event_type: str, data: str) -> None:
    """Publish an event to a live channel, e.g. `publish-event products maintenance '{}'`."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="DATA") from exc
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object", param_hint="DATA")
    click.echo(events.publish(channel, event_type, payload))


def init_app(app: Flask) -> None:
    """Register the project's CLI commands."""
    app.cli.add_command(dev_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(publish_event_command)
