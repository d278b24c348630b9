"""Fixtures shared by the job tests."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.accounts import login, make_user


@pytest.fixture
def ada(client: FlaskClient) -> dict[str, Any]:
    """A signed-in user who submits jobs: her row and her request headers."""
    user = make_user("ada@example.test")
    return {"user": user, "headers": login(client, "ada@example.test").headers}
