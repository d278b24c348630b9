"""Transactional email: render a template, queue it, deliver it from a worker.

Services call `send_mail` (or `send_mail_after_commit` inside a transaction).
The message is rendered at once, so a broken template or a missing context
key fails the caller, and delivered by the `jobs.mail.deliver_mail` job,
which RQ retries when the SMTP server is unreachable. Templates live in
`backend/templates/mail/`: `<name>.txt` (required; its first line is
`Subject: ...`) and `<name>.html` (optional). With `MAIL_URL` unset, mail is
written to `.eml` files in `MAIL_OUTBOX_DIR` instead of being sent.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jinja2
import structlog
from flask import current_app
from rq import Retry

from backend.db import db
from backend.queues import enqueue

log = structlog.get_logger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "mail"
SUBJECT_PREFIX = "Subject:"
SMTP_TIMEOUT = 10.0
DELIVERY_RETRY_INTERVALS = [10, 30, 60, 300, 900]
DELIVERY_TIMEOUT = 60
DELIVERY_JOB = "jobs.mail.deliver_mail"  # by name: the jobs package sits above the services
_TRUE = frozenset({"1", "true", "yes", "on"})

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class RenderedMail:
    """A rendered email: its subject, plain-text body and optional HTML body."""

    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail, parsed from `MAIL_URL`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False


def render(template: str, context: Mapping[str, Any]) -> RenderedMail:
    """Render the mail template `template` with `context`.

    Raises `jinja2.TemplateNotFound` when `<template>.txt` is missing,
    `jinja2.UndefinedError` when `context` lacks a key the template uses and
    `ValueError` when the text does not start with a `Subject:` line.
    """
    text = _env.get_template(f"{template}.txt").render(context)
    first_line, _, body = text.partition("\n")
    if not first_line.startswith(SUBJECT_PREFIX):
        raise ValueError(f"mail template {template}.txt must start with a 'Subject:' line")
    subject = first_line.removeprefix(SUBJECT_PREFIX).strip()
    return RenderedMail(
        subject=subject, text=body.lstrip("\n"), html=_render_html(template, context)
    )


def _render_html(template: str, context: Mapping[str, Any]) -> str | None:
    try:
        html_template = _env.get_template(f"{template}.html")
    except jinja2.TemplateNotFound:
        return None
    return html_template.render(context)


def send_mail(*, to: str, template: str, context: Mapping[str, Any]) -> str:
    """Render `template` for `to` now and queue its delivery; return the RQ job id.

    Template errors raise here, in the caller. Delivery runs on the `default`
    queue and is retried with back-off when it fails. Inside a database
    transaction, use `send_mail_after_commit` instead.
    """
    return _enqueue_delivery(_build_payload(to, template, context))


def send_mail_after_commit(*, to: str, template: str, context: Mapping[str, Any]) -> None:
    """Render `template` now; queue its delivery once the current transaction commits.

    Queues at once when no transaction is open; a rolled-back transaction
    sends nothing.
    """
    payload = _build_payload(to, template, context)
    db.after_commit(lambda: _enqueue_delivery(payload))


def _build_payload(to: str, template: str, context: Mapping[str, Any]) -> dict[str, Any]:
    mail_url = current_app.config.get("MAIL_URL")
    if mail_url:
        parse_mail_url(mail_url)  # a malformed MAIL_URL fails the caller, not five retries
    rendered = render(template, context)
    return {
        "to": to,
        "from": current_app.config["MAIL_FROM"],
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
    }


def _enqueue_delivery(payload: dict[str, Any]) -> str:
    job = enqueue(
        DELIVERY_JOB,
        payload,
        queue="default",
        retry=Retry(max=len(DELIVERY_RETRY_INTERVALS), interval=DELIVERY_RETRY_INTERVALS),
        timeout=DELIVERY_TIMEOUT,
    )
    return str(job.id)


def parse_mail_url(url: str) -> SmtpSettings:
    """Parse `smtp://[user:pass@]host[:port][?starttls=1|?ssl=1]` into `SmtpSettings`.

    Credentials are URL-decoded. The port defaults to 465 with `ssl=1`, 587
    with `starttls=1` and 25 otherwise. Raises `ValueError` for another
    scheme, a missing host, a bad port or both `starttls` and `ssl`.
    """
    parts = urlsplit(url)
    if parts.scheme != "smtp":
        raise ValueError(f"MAIL_URL must start with smtp://, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("MAIL_URL has no host: expected smtp://[user:pass@]host[:port]")
    query = parse_qs(parts.query)
    starttls = _flag(query, "starttls")
    use_ssl = _flag(query, "ssl")
    if starttls and use_ssl:
        raise ValueError("MAIL_URL cannot ask for both starttls=1 and ssl=1")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"MAIL_URL has an invalid port: {exc}") from exc
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if use_ssl else 587 if starttls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        starttls=starttls,
        ssl=use_ssl,
    )


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    values = query.get(name, [])
    return bool(values) and values[-1].strip().lower() in _TRUE


def deliver(message: Mapping[str, Any]) -> str:
    """Send `message` (a payload built by `send_mail`); return its Message-ID.

    Sends through the SMTP server in `MAIL_URL`, or, when it is unset, writes
    an `.eml` file to `MAIL_OUTBOX_DIR`. SMTP errors are logged and raised
    (so the job is retried); a malformed `MAIL_URL` raises `ValueError`.
    """
    mail_url = current_app.config.get("MAIL_URL")
    settings = parse_mail_url(mail_url) if mail_url else None
    email = build_message(message)
    if settings is None:
        _write_outbox(email, Path(current_app.config["MAIL_OUTBOX_DIR"]))
    else:
        _send_smtp(email, settings)
    return str(email["Message-ID"])


def build_message(message: Mapping[str, Any]) -> EmailMessage:
    """Build the `EmailMessage` for a payload: text, an HTML alternative, Date and Message-ID."""
    email = EmailMessage()
    email["From"] = message["from"]
    email["To"] = message["to"]
    email["Subject"] = message["subject"]
    email["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(message["from"])[1].rpartition("@")[2] or "localhost"
    email["Message-ID"] = make_msgid(domain=domain)
    email.set_content(message["text"])
    if message.get("html"):
        email.add_alternative(message["html"], subtype="html")
    return email


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    if settings.ssl:
        return smtplib.SMTP_SSL(
            settings.host,
            settings.port,
            timeout=SMTP_TIMEOUT,
            context=ssl.create_default_context(),
        )
    return smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT)


def _send_smtp(email: EmailMessage, settings: SmtpSettings) -> None:
    try:
        with _connect(settings) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(email)
    except OSError as exc:  # smtplib.SMTPException is an OSError
        log.warning(
            "mail.smtp_failed",
            to=email["To"],
            subject=email["Subject"],
            host=settings.host,
            port=settings.port,
            error=repr(exc),
        )
        raise
    log.info("mail.sent", to=email["To"], subject=email["Subject"], message_id=email["Message-ID"])


def _write_outbox(email: EmailMessage, outbox: Path) -> Path:
    outbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = outbox / f"{stamp}-{uuid.uuid4().hex}.eml"
    path.write_bytes(email.as_bytes())
    log.info("mail.written", to=email["To"], subject=email["Subject"], path=str(path))
    return path
