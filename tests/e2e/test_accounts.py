"""The whole account flow over HTTP against the Procfile's gunicorn and RQ worker.

Mail goes through a real SMTP server on loopback; the test reads the tokens
out of the delivered messages, as a user would from their inbox.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.support import processes as procs
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
TOKEN = re.compile(r"^([A-Za-z0-9_-]{40,})\r?$", re.MULTILINE)


def mailed_token(smtp: SmtpServer, count: int) -> str:
    message = smtp.wait_for(count, timeout=20)[-1]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = TOKEN.search(body.get_content())
    assert match
    return match.group(1)


def test_register_verify_login_refresh_reset_logout_over_http(
    database_url: str,
    redis_url: str,
    smtp_server: SmtpServer,
    processes: Callable[..., procs.Process],
) -> None:
    port = procs.free_port()
    env = {**procs.procfile_environment(database_url, redis_url, port), "MAIL_URL": smtp_server.url}
    commands = procs.procfile()
    processes(["bash", "-c", f"exec {commands['web']}"], env)
    processes(["bash", "-c", f"exec {commands['worker']}"], env)
    api = f"http://127.0.0.1:{port}/api/v1"
    procs.wait_until_up(f"http://127.0.0.1:{port}/healthz")
    with httpx.Client(base_url=api, timeout=10) as http:
        created = http.post(
            "/auth/register", json={"email": "ada@example.test", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
        verify = http.post("/auth/email/verify", json={"token": mailed_token(smtp_server, 1)})
        assert verify.status_code == 204

        tokens = http.post(
            "/auth/login",
            json={"email": "ada@example.test", "password": PASSWORD, "device_name": "e2e"},
        ).json()
        me = http.get("/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.json()["email_verified"] is True

        rotated = http.post(
            "/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
        ).json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        bearer = {"Authorization": f"Bearer {rotated['access_token']}"}
        sessions = http.get("/auth/sessions", headers=bearer).json()
        assert [s["device_name"] for s in sessions] == ["e2e"]

        assert (
            http.post("/auth/password/forgot", json={"email": "ada@example.test"}).status_code
            == 202
        )
        reset = http.post(
            "/auth/password/reset",
            json={"token": mailed_token(smtp_server, 2), "password": "a brand new secret"},
        )
        assert reset.status_code == 204
        revoked = http.get("/users/me", headers=bearer)
        assert revoked.status_code == 401
        assert revoked.json()["error"] == "token_revoked"

        again = http.post(
            "/auth/login", json={"email": "ada@example.test", "password": "a brand new secret"}
        ).json()
        bearer = {"Authorization": f"Bearer {again['access_token']}"}
        assert http.post("/auth/logout?scope=global", headers=bearer).status_code == 204
        assert http.get("/users/me", headers=bearer).status_code == 401
