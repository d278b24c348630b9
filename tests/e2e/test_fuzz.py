"""schemathesis over our own OpenAPI document, as anonymous, user and admin, with every check on.

The stack is the Procfile's `web` process in production mode. Each role's run
must generate at least `MIN_CASES` cases and find nothing: server errors,
responses, headers or content types the document does not state, schema-valid
input refused, invalid input accepted, ignored auth, use after free. What a
schema cannot express (rules between fields or against stored data) is listed,
with its reason, in `schemathesis.toml` beside this file.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.accounts import PASSWORD, make_user
from tests.support.catalog import make_product
from tests.support.processes import BIN
from tests.support.stripe_stand_in import StripeStandIn

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

CONFIG = Path(__file__).with_name("schemathesis.toml")
MIN_CASES = 2000
EXAMPLES_PER_OPERATION = 40
# Signing out, ending sessions, changing the password or refreshing would end
# the run's own token halfway; those flows have their own tests.
KEEPS_THE_TOKEN_ALIVE = r"logout|sessions|password|refresh"
GENEROUS = "1000000/minute"
LIMITS = (
    "RATELIMIT_WRITES",
    "RATELIMIT_LOGIN_PER_IP",
    "RATELIMIT_LOGIN_PER_EMAIL",
    "RATELIMIT_REGISTER_PER_IP",
    "RATELIMIT_FORGOT_PER_IP",
    "RATELIMIT_FORGOT_PER_EMAIL",
    "RATELIMIT_OAUTH_PER_IP",
    "RATELIMIT_OAUTH_COMPLETE_PER_IP",
)


@pytest.fixture
def stack(
    app: object,
    tmp_path: Path,
    production_web: Callable[..., str],
    stripe_stand_in: StripeStandIn,
) -> tuple[str, dict[str, str]]:
    """The production web process (payments on, at the Stripe stand-in), a token per role."""
    make_user("root@example.test", role="admin")
    make_user("ada@example.test")
    for n in range(3):
        make_product(f"FUZZ-{n}")
    base = production_web(
        FILES_DIR=str(tmp_path / "files"),
        SPOOL_DIR=str(tmp_path / "spool"),
        MAIL_OUTBOX_DIR=str(tmp_path / "mail"),
        METRICS_TOKEN="fuzz-metrics-token-0123456789abcdef",
        **dict.fromkeys(LIMITS, GENEROUS),
        **{name: str(value) for name, value in stripe_stand_in.settings().items()},
    )
    tokens = {}
    for role, email in (("user", "ada@example.test"), ("admin", "root@example.test")):
        body = {"email": email, "password": PASSWORD}
        tokens[role] = httpx.post(f"{base}/api/v1/auth/login", json=body, timeout=10).json()[
            "access_token"
        ]
    return base, tokens


def fuzz(base: str, token: str | None, workdir: Path) -> tuple[int, str]:
    """Run schemathesis once; return its exit code and output."""
    command = [
        str(BIN / "st"), "--config-file", str(CONFIG), "run", f"{base}/api/v1/openapi.json",
        "--checks", "all", "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "20261201",
        "--workers", "1", "--no-color",  # CPython 3.11: ast.parse in two threads can fail
    ]  # fmt: skip
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
        command += ["--exclude-path-regex", KEEPS_THE_TOKEN_ALIVE]
    # schemathesis writes a .schemathesis folder where it runs: keep it out of the project.
    done = subprocess.run(  # noqa: S603 - our own command line
        command, cwd=workdir, capture_output=True, text=True, timeout=900, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_the_document_holds_for_every_role(
    stack: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, tokens = stack
    # Admin last: its writes (roles, deactivation) must not end the user's run early.
    for role, token in (("anonymous", None), ("user", tokens["user"]), ("admin", tokens["admin"])):
        code, output = fuzz(base, token, tmp_path)
        generated = re.search(r"(\d+) generated", output)
        assert code == 0, f"schemathesis as {role} found failures:\n{output[-20000:]}"
        assert generated is not None, output[-5000:]
        assert int(generated.group(1)) >= MIN_CASES, f"{role}: only {generated.group(1)} cases"
