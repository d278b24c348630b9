"""Transactional mail: templates, the queue, and delivery over real SMTP or to the outbox."""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import jinja2
import pytest
from flask import Flask
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from backend.db import db
from backend.queues import get_queue, queue_depths
from backend.redis_store import get_redis
from backend.services.mail import (
    SmtpSettings,
    deliver,
    parse_mail_url,
    render,
    send_mail,
    send_mail_after_commit,
)
from tests.support.smtp import SmtpServer, free_port

TOKEN = "vX3-q9_ZtK2mPw8aLr5"
CONTEXT = {"full_name": "Ada Lovelace", "token": TOKEN, "expires_hours": 24}
SENDER = "Flet Backend <no-reply@example.test>"


def fetch_job(job_id: str) -> Job:
    return Job.fetch(job_id, connection=get_redis())


def body_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    assert part.get_content_type() == f"text/{subtype}"
    content = part.get_content()
    assert isinstance(content, str)
    return content


@pytest.mark.parametrize(
    ("template", "subject"),
    [("verify_email", "Confirm your email address"), ("password_reset", "Reset your password")],
)
def test_templates_render_a_subject_and_the_token_in_text_and_html(
    template: str, subject: str
) -> None:
    mail = render(template, CONTEXT)
    assert mail.subject == subject
    assert not mail.text.startswith("Subject:")
    assert "Ada Lovelace" in mail.text
    assert f"\n{TOKEN}\n" in mail.text
    assert mail.html is not None
    assert TOKEN in mail.html
    assert "24 hours" in mail.text


def test_html_escapes_the_context_and_text_keeps_it_verbatim() -> None:
    mail = render("verify_email", {**CONTEXT, "full_name": "<script>alert(1)</script>"})
    assert mail.html is not None
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "Hi <script>alert(1)</script>," in mail.text


def test_a_missing_context_key_raises() -> None:
    with pytest.raises(jinja2.UndefinedError, match="expires_hours"):
        render("verify_email", {"full_name": "Ada", "token": TOKEN})


def test_an_unknown_template_raises() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        render("no_such_mail", CONTEXT)


def test_send_mail_is_delivered_over_smtp_by_a_worker(
    make_app: Callable[..., Flask],
    run_worker: Callable[[], bool],
    smtp_server: SmtpServer,
) -> None:
    mail_app = make_app(MAIL_URL=smtp_server.url, MAIL_FROM=SENDER)
    with mail_app.app_context():
        job_id = send_mail(to="ada@example.test", template="verify_email", context=CONTEXT)
        assert queue_depths()["default"] == 1
        assert run_worker()
        job = fetch_job(job_id)
        assert job.get_status() == JobStatus.FINISHED
        result = job.return_value()
    [received] = smtp_server.wait_for(1)
    assert received["To"] == "ada@example.test"
    assert received["From"] == SENDER
    assert received["Subject"] == "Confirm your email address"
    assert received["Date"] is not None
    assert result == {"message_id": received["Message-ID"], "to": "ada@example.test"}
    assert received.get_content_type() == "multipart/alternative"
    assert TOKEN in body_of(received, "plain")
    assert TOKEN in body_of(received, "html")


def test_without_mail_url_the_mail_is_written_to_the_outbox(
    make_app: Callable[..., Flask], run_worker: Callable[[], bool], tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    mail_app = make_app(MAIL_URL=None, MAIL_OUTBOX_DIR=str(outbox))
    with mail_app.app_context():
        job_id = send_mail(to="ada@example.test", template="password_reset", context=CONTEXT)
        assert run_worker()
        result = fetch_job(job_id).return_value()
    [eml] = outbox.glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), _class=EmailMessage, policy=default_policy)
    assert message["To"] == "ada@example.test"
    assert message["Subject"] == "Reset your password"
    assert result == {"message_id": message["Message-ID"], "to": "ada@example.test"}
    assert TOKEN in body_of(message, "plain")
    assert TOKEN in body_of(message, "html")


def test_an_unreachable_smtp_server_fails_the_job_and_schedules_a_retry(
    make_app: Callable[..., Flask], run_worker: Callable[[], bool]
) -> None:
    mail_app = make_app(MAIL_URL=f"smtp://127.0.0.1:{free_port()}")
    with mail_app.app_context():
        job_id = send_mail(to="ada@example.test", template="verify_email", context=CONTEXT)
        assert fetch_job(job_id).retries_left == 5
        run_worker()
        job = fetch_job(job_id)
        assert job.get_status() == JobStatus.SCHEDULED
        assert job.retries_left == 4
        assert job.id in ScheduledJobRegistry(queue=get_queue("default")).get_job_ids()


def test_send_mail_after_commit_waits_for_the_commit(app: Flask) -> None:
    with db.atomic():
        send_mail_after_commit(to="ada@example.test", template="verify_email", context=CONTEXT)
        assert queue_depths()["default"] == 0
    assert queue_depths()["default"] == 1


def test_send_mail_after_commit_sends_nothing_on_rollback(app: Flask) -> None:
    with db.atomic() as transaction:
        send_mail_after_commit(to="ada@example.test", template="verify_email", context=CONTEXT)
        transaction.rollback()
    assert queue_depths()["default"] == 0


def test_send_mail_after_commit_outside_a_transaction_queues_at_once(app: Flask) -> None:
    send_mail_after_commit(to="ada@example.test", template="verify_email", context=CONTEXT)
    assert queue_depths()["default"] == 1


def test_template_errors_surface_in_the_caller_and_queue_nothing(app: Flask) -> None:
    with pytest.raises(jinja2.UndefinedError):
        send_mail(to="ada@example.test", template="verify_email", context={"token": TOKEN})
    assert queue_depths()["default"] == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.test", SmtpSettings(host="mail.example.test", port=25)),
        (
            "smtp://mail.example.test?starttls=1",
            SmtpSettings(host="mail.example.test", port=587, starttls=True),
        ),
        (
            "smtp://mail.example.test?ssl=1",
            SmtpSettings(host="mail.example.test", port=465, ssl=True),
        ),
        (
            "smtp://apikey:p%40ss%3Aw%2Fd@mail.example.test:2525?starttls=true",
            SmtpSettings(
                host="mail.example.test",
                port=2525,
                username="apikey",
                password="p@ss:w/d",
                starttls=True,
            ),
        ),
        (
            "smtp://user%40example.test:@127.0.0.1:1025?ssl=0",
            SmtpSettings(host="127.0.0.1", port=1025, username="user@example.test", password=""),
        ),
    ],
)
def test_mail_url_is_parsed(url: str, expected: SmtpSettings) -> None:
    assert parse_mail_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.test", "smtp://"),
        ("mail.example.test:25", "smtp://"),
        ("smtp://", "no host"),
        ("smtp://:25", "no host"),
        ("smtp://mail.example.test:notaport", "invalid port"),
        ("smtp://mail.example.test?starttls=1&ssl=1", "both"),
    ],
)
def test_malformed_mail_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mail_url(url)


@pytest.mark.usefixtures("app")
def test_a_malformed_mail_url_fails_the_caller(make_app: Callable[..., Flask]) -> None:
    with make_app(MAIL_URL="smtps://mail.example.test").app_context():
        with pytest.raises(ValueError, match="smtp://"):
            send_mail(to="ada@example.test", template="verify_email", context=CONTEXT)
        assert queue_depths()["default"] == 0


def test_outbox_messages_carry_their_metadata(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    # `deliver` run in the caller's process: plain text only when no HTML is given.
    with make_app(MAIL_URL=None, MAIL_OUTBOX_DIR=str(tmp_path / "out")).app_context():
        message_id = deliver(
            {"to": "b@example.test", "from": SENDER, "subject": "Hi", "text": "x\n", "html": None}
        )
    [eml] = (tmp_path / "out").glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), _class=EmailMessage, policy=default_policy)
    assert message["Message-ID"] == message_id
    assert message_id.endswith("@example.test>")
    assert message.get_content_type() == "text/plain"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ("?ssl=1", "SSL"),  # TLS handshake against a plain-text server
        ("?starttls=1", "STARTTLS extension not supported"),
    ],
)
def test_tls_that_the_server_cannot_do_fails_instead_of_sending_in_clear(
    make_app: Callable[..., Flask],
    smtp_server: SmtpServer,
    options: str,
    error: str,
) -> None:
    payload = {"to": "b@example.test", "from": SENDER, "subject": "Hi", "text": "x\n"}
    mail_app = make_app(MAIL_URL=smtp_server.url + options)
    with mail_app.app_context(), pytest.raises(OSError, match=error):
        deliver(payload)
    assert smtp_server.messages == []


def test_credentials_for_a_server_without_auth_fail_instead_of_sending(
    make_app: Callable[..., Flask],
    smtp_server: SmtpServer,
) -> None:
    url = smtp_server.url.replace("smtp://", "smtp://user:secret@")
    payload = {"to": "b@example.test", "from": SENDER, "subject": "Hi", "text": "x\n"}
    mail_app = make_app(MAIL_URL=url)
    with mail_app.app_context(), pytest.raises(OSError, match="AUTH extension not supported"):
        deliver(payload)
    assert smtp_server.messages == []
