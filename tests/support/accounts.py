"""Helpers for tests that need users, tokens and mailed secrets."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from flask.testing import FlaskClient

from backend.models import User
from backend.services import passwords

PASSWORD = "correct horse battery"
ADMIN_EMAIL = "root@example.test"  # the `admin` fixture's account
USER_EMAIL = "ada@example.test"  # the `user` fixture's account
TOKEN_LINE = re.compile(r"^([A-Za-z0-9_-]{40,})$", re.MULTILINE)


@dataclass
class Login:
    """A signed-in device: its tokens and the user."""

    access: str
    refresh: str
    user_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    @property
    def refresh_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.refresh}"}


def make_user(email_address: str, *, role: str = "user", password: str = PASSWORD) -> User:
    """Create a user directly (no mail, no rate limit)."""
    return User.create(
        email=email_address.lower(),
        password_hash=passwords.hash_password(password),
        role=role,
        full_name=email_address.split("@")[0],
    )


def login(
    client: FlaskClient, email_address: str, password: str = PASSWORD, device: str = "test"
) -> Login:
    """Sign in over HTTP and return the tokens."""
    response = client.post(
        "/api/v1/auth/login",
        json={"email": email_address, "password": password, "device_name": device},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    return Login(body["access_token"], body["refresh_token"], body["user"]["id"])


def read_outbox(folder: Path) -> list[EmailMessage]:
    """Return the messages written to the outbox folder, oldest first."""
    messages = []
    for path in sorted(folder.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def token_from(message: EmailMessage) -> str:
    """Return the one-time token printed on its own line in a mail's text part."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    match = TOKEN_LINE.search(part.get_content())
    assert match, part
    return match.group(1)
