"""The Flet shop served in web mode against the Procfile stack, driven in headless Chromium.

Shared by the browser tests (`tests/e2e/test_flet*.py`): the stack (gunicorn and an RQ
worker from the Procfile, accounts and the demo catalog from the CLI), the shop process,
the Chromium tab, screenshots, and the steps every test takes (sign in, search). Extra
environment for the backend and the shop comes from the `stack_env` and `shop_env`
fixtures (empty unless a test module overrides them).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from backend.config import PROJECT_ROOT
from tests.support import processes as procs
from tests.support.accounts import PASSWORD
from tests.support.browser import Tab, chromium, find_chromium

CHROMIUM = find_chromium()
APP = PROJECT_ROOT / "clients" / "flet_shop" / "main.py"
ADMIN = "root@example.test"
FIRST_RENDER_TIMEOUT = 120  # Flutter's first frame takes 7-12 s, much more on a busy machine
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)


@dataclass
class Stack:
    """The running backend and who may sign in to it."""

    base: str  # http://127.0.0.1:PORT
    admin: dict[str, str]  # Authorization header
    user_email: str
    user_password: str
    products: int
    shop_port: int  # where the Flet app will be served (the backend allows it as a CORS origin)


class Steps:
    """Screenshots named by step, in order."""

    def __init__(self, tab: Tab, folder: Path) -> None:
        self.tab = tab
        self.folder = folder
        self.count = 0

    def shot(self, name: str) -> None:
        self.count += 1
        self.tab.screenshot(self.folder / f"{self.count:02d}-{name}.png")


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(procs.BIN / "flask"), "--app", "wsgi", *args], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def artifacts_root() -> Path:
    return Path(os.environ.get("E2E_ARTIFACTS_DIR") or PROJECT_ROOT / "var" / "e2e-artifacts")


@pytest.fixture
def artifacts(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, redis_url: str
) -> Iterator[Path]:
    """A folder for screenshots and logs, copied to the artifacts root even on failure."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    yield folder
    database = database_url.split(":", 1)[0]
    redis = "embedded-redis" if redis_url.startswith("unix") else "redis"
    target = artifacts_root() / f"{request.node.name}-{database}-{redis}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target)


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Extra environment for the backend's processes (a test module may override it)."""
    return {}


@pytest.fixture
def shop_env() -> dict[str, str]:
    """Extra environment for the Flet shop's process (a test module may override it)."""
    return {}


@pytest.fixture
def stack(
    database_url: str,
    redis_url: str,
    processes: Callable[..., procs.Process],
    tmp_path: Path,
    stack_env: dict[str, str],
) -> Stack:
    """gunicorn and a worker from the Procfile; an admin, a user and products from the CLI.

    The browser loads product images straight from the backend (Flutter web fetches them with
    XHR), so the backend allows the Flet app's origin, chosen here, in `CORS_ORIGINS`.
    """
    port = shop_port = procs.free_port()
    while shop_port == port:
        shop_port = procs.free_port()
    env = {
        **procs.procfile_environment(database_url, redis_url, port),
        "SPOOL_DIR": str(tmp_path / "spool"),
        "MAIL_OUTBOX_DIR": str(tmp_path / "mail"),
        "FILES_DIR": str(tmp_path / "files"),
        "CORS_ORIGINS": f"http://127.0.0.1:{shop_port}",
        **stack_env,
    }
    processes(["bash", "-c", f"exec {procs.procfile()['web']}"], env)
    processes(["bash", "-c", f"exec {procs.procfile()['worker']}"], env)
    cli(env, "create-admin", "--email", ADMIN, "--password", PASSWORD)
    seeded = cli(env, "seed-demo")
    user = re.search(r"^user\s+(\S+@\S+)\s+(\S+)$", seeded, re.MULTILINE)
    count = re.search(r"catalog: (\d+) products added", seeded)
    assert user, seeded
    assert count, seeded
    base = f"http://127.0.0.1:{port}"
    procs.wait_until_up(f"{base}/healthz", timeout=60)
    login = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": ADMIN, "password": PASSWORD}, timeout=30
    )
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    return Stack(base, admin, user.group(1), user.group(2), int(count.group(1)), shop_port)


@pytest.fixture
def shop_url(
    stack: Stack,
    processes: Callable[..., procs.Process],
    artifacts: Path,
    shop_env: dict[str, str],
) -> Iterator[str]:
    """The Flet shop served in web mode, talking to the stack."""
    port = stack.shop_port  # the origin the backend allows (CORS_ORIGINS)
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
        "API_BASE": stack.base, "FLET_VIEW": "web", "FLET_FORCE_WEB_SERVER": "1",
        "FLET_WEB_NO_CDN": "1", "FLET_SERVER_IP": "127.0.0.1", "FLET_SERVER_PORT": str(port),
        "PYTHONUNBUFFERED": "1", **shop_env,
    }  # fmt: skip
    app = processes([sys.executable, str(APP)], env)
    url = f"http://127.0.0.1:{port}/"
    try:
        procs.wait_until_up(url, timeout=60)
        yield url
    finally:
        (artifacts / "flet-app.log").write_text("".join(app.output))


@pytest.fixture
def tab(shop_url: str, tmp_path: Path, artifacts: Path) -> Iterator[Tab]:
    """A Chromium tab showing the shop, semantics on."""
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    try:
        with chromium(CHROMIUM, profile) as page:
            try:
                page.navigate(shop_url)
                page.enable_semantics(timeout=FIRST_RENDER_TIMEOUT)
                yield page
            finally:  # what the screen showed at the end (the failure, if one)
                with contextlib.suppress(Exception):
                    page.screenshot(artifacts / "last.png")
                    (artifacts / "last.txt").write_text(page.text())
    finally:
        log = profile.parent / f"{profile.name}-chromium.log"
        if log.exists():
            shutil.copyfile(log, artifacts / "chromium.log")


def sign_in(tab: Tab, email: str, password: str) -> None:
    tab.wait_for_text("Sign in to continue", timeout=FIRST_RENDER_TIMEOUT)
    tab.fill("Email", email)
    tab.fill("Password", password)
    tab.click("Sign in", exact=True)
    tab.wait_for_text(f"Signed in as {email}")


def search(tab: Tab, query: str) -> None:
    tab.fill("Search products", query)
    tab.click_until("Search", "1 product · page 1 of 1", exact=True)


def product_id(stack: Stack, sku: str) -> int:
    found = httpx.get(f"{stack.base}/api/v1/products", params={"q": sku}, timeout=30).json()
    return int(next(p["id"] for p in found if p["sku"] == sku))


def product_photo() -> bytes:
    """A 2000×1200 JPEG: coloured bands and a disc, easy to recognise in a screenshot."""
    image = Image.new("RGB", (2000, 1200), (250, 244, 230))
    draw = ImageDraw.Draw(image)
    for band, colour in enumerate([(200, 60, 50), (240, 170, 40), (60, 140, 90), (50, 90, 170)]):
        draw.rectangle((band * 500, 0, band * 500 + 499, 240), fill=colour)
    draw.ellipse((700, 380, 1300, 980), fill=(30, 30, 30), outline=(250, 250, 250), width=24)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
