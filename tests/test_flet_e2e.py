"""The Flet shop in headless Chromium against the backend as production runs it.

gunicorn and an RQ worker start from the Procfile, the CLI creates the accounts and the demo
catalog, the Flet app (`clients/flet_shop`) runs in web mode, and Chromium is driven over the
DevTools protocol (`tests/browser.py`), reading what the user sees from Flutter's semantics tree.
Screenshots of every step land in `$E2E_ARTIFACTS_DIR` (default `var/e2e-artifacts/`).
"""

from __future__ import annotations

import contextlib
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

from backend.config import PROJECT_ROOT
from tests.accounts import PASSWORD
from tests.browser import Tab, chromium, find_chromium
from tests.processes import (
    BIN,
    Process,
    free_port,
    procfile,
    procfile_environment,
    wait_until_up,
)

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
    ),
]
APP = PROJECT_ROOT / "clients" / "flet_shop" / "main.py"
ADMIN = "root@example.test"
FIRST_RENDER_TIMEOUT = 120  # Flutter's first frame takes 7-12 s, much more on a busy machine
IMPORT_CSV = (
    "sku,name,description,price,currency,stock\n"
    "E2E-001,Imported kettle,From the browser,19.99,USD,5\n"
    "E2E-002,Imported mug,From the browser,7.50,USD,12\n"
    "E2E-003,Broken row,Bad price,abc,USD,1"
)


@dataclass
class Stack:
    """The running backend and who may sign in to it."""

    base: str  # http://127.0.0.1:PORT
    admin: dict[str, str]  # Authorization header
    user_email: str
    user_password: str
    products: int


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
        [str(BIN / "flask"), "--app", "wsgi", *args], env=env, cwd=PROJECT_ROOT,
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
def stack(
    database_url: str, redis_url: str, processes: Callable[..., Process], tmp_path: Path
) -> Stack:
    """gunicorn and a worker from the Procfile; an admin, a user and products from the CLI."""
    port = free_port()
    env = {
        **procfile_environment(database_url, redis_url, port),
        "SPOOL_DIR": str(tmp_path / "spool"),
        "MAIL_OUTBOX_DIR": str(tmp_path / "mail"),
    }
    processes(["bash", "-c", f"exec {procfile()['web']}"], env)
    processes(["bash", "-c", f"exec {procfile()['worker']}"], env)
    cli(env, "create-admin", "--email", ADMIN, "--password", PASSWORD)
    seeded = cli(env, "seed-demo")
    user = re.search(r"^user\s+(\S+@\S+)\s+(\S+)$", seeded, re.MULTILINE)
    count = re.search(r"catalog: (\d+) products added", seeded)
    assert user, seeded
    assert count, seeded
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/healthz", timeout=60)
    login = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": ADMIN, "password": PASSWORD}, timeout=30
    )
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    return Stack(base, admin, user.group(1), user.group(2), int(count.group(1)))


@pytest.fixture
def shop_url(stack: Stack, processes: Callable[..., Process], artifacts: Path) -> Iterator[str]:
    """The Flet shop served in web mode, talking to the stack."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
        "API_BASE": stack.base, "FLET_VIEW": "web", "FLET_FORCE_WEB_SERVER": "1",
        "FLET_WEB_NO_CDN": "1", "FLET_SERVER_IP": "127.0.0.1", "FLET_SERVER_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    app = processes([sys.executable, str(APP)], env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, timeout=60)
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


def set_stock(stack: Stack, pid: int, stock: int) -> None:
    url = f"{stack.base}/api/v1/products/{pid}"
    etag = httpx.get(url, headers=stack.admin, timeout=30).headers["ETag"]
    response = httpx.patch(
        url, json={"stock": stock}, headers={**stack.admin, "If-Match": etag}, timeout=30
    )
    assert response.status_code == 200, response.text


def add_from_details(tab: Tab, quantity: int) -> None:
    tab.click_until("Details", "Back to products", exact=True)
    tab.fill("Quantity", str(quantity))
    tab.click("Add to cart", exact=True)
    tab.wait_for_text(f"Cart ({quantity})")


def test_shopping_and_importing_in_the_browser(
    stack: Stack, shop_url: str, tab: Tab, artifacts: Path
) -> None:
    steps = Steps(tab, artifacts)

    # sign in through the UI; the seeded catalog is listed
    sign_in(tab, stack.user_email, stack.user_password)
    tab.wait_for_text(f"{stack.products} products · page 1 of")
    tab.wait_for_text("Stock: ")
    steps.shot("signed-in-catalog")

    # a reload keeps the session (the tokens live in SharedPreferences)
    tab.navigate(shop_url)
    tab.enable_semantics(timeout=FIRST_RENDER_TIMEOUT)
    tab.wait_for_text(f"Signed in as {stack.user_email}", timeout=FIRST_RENDER_TIMEOUT)
    tab.wait_for_text(f"{stack.products} products · page 1 of")

    # the stock shown follows an admin's change live
    search(tab, "TEA-001")
    tab.wait_for_text("Green tea")
    tab.wait_for_match(r"Stock: 10\b")
    set_stock(stack, product_id(stack, "TEA-001"), 7)
    tab.wait_for_match(r"Stock: 7\b")
    steps.shot("stock-changed-live")

    # an order larger than the stock is refused with a clear message
    add_from_details(tab, 50)
    tab.click_until("Cart (50)", "Place order")
    tab.click("Place order", exact=True)
    tab.wait_for_text("Not enough stock: Green tea (requested 50, available 7).")
    steps.shot("insufficient-stock")
    tab.click("Remove", exact=True)
    tab.wait_for_text("Your cart is empty.")

    # a good order is placed and listed under "My orders", its status following live
    tab.click_until("Products", "Search products", exact=True)
    search(tab, "TEA-001")
    add_from_details(tab, 2)
    tab.click_until("Cart (2)", "Place order")
    tab.click("Place order", exact=True)
    order = tab.wait_for_match(r"Order #(\d+) placed: 11\.00 USD\.")
    order_id = order.group(1)
    steps.shot("order-placed")
    tab.click_until("My orders", "Items: 2 × Green tea", exact=True)
    tab.wait_for_match(rf"Order #{order_id}\b")
    tab.wait_for_text("Status: pending")
    moved = httpx.post(
        f"{stack.base}/api/v1/orders/{order_id}/status", json={"status": "confirmed"},
        headers=stack.admin, timeout=30,
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    tab.wait_for_text("Status: confirmed")
    tab.wait_for_text("Notifications: 1")
    steps.shot("my-orders-live-status")

    # as admin: import a CSV, watch the progress reach 100 %, read the row errors
    tab.click_until("Sign out", "Sign in to continue", exact=True)
    sign_in(tab, ADMIN, PASSWORD)
    tab.click_until("Import", "CSV content", exact=True)
    tab.fill("CSV content", IMPORT_CSV)
    tab.click("Start import", exact=True)
    tab.wait_for_text("Import 100%", timeout=60)
    tab.wait_for_text("Created 2, updated 0, failed 1")
    tab.wait_for_text("Row 3, price:")
    steps.shot("import-finished")
    imported = httpx.get(f"{stack.base}/api/v1/products", params={"q": "E2E-"}, timeout=30)
    assert sorted(p["sku"] for p in imported.json()) == ["E2E-001", "E2E-002"]
