"""The Flet shop in headless Chromium against the backend as production runs it.

gunicorn and an RQ worker start from the Procfile, the CLI creates the accounts and the demo
catalog, the Flet app (`clients/flet_shop`) runs in web mode, and Chromium is driven over the
DevTools protocol (`tests/support/browser.py`), reading what the user sees from Flutter's
semantics tree and, for product images, which requests the browser made (CDP `Network` events).
Screenshots of every step land in `$E2E_ARTIFACTS_DIR` (default `var/e2e-artifacts/`).
The stack, the shop and the tab are fixtures of `tests/support/flet_shop.py`.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.accounts import PASSWORD
from tests.support.browser import BrowserError, Tab, poll
from tests.support.flet_shop import (
    ADMIN,
    FIRST_RENDER_TIMEOUT,
    Stack,
    Steps,
    needs_chromium,
    product_id,
    product_photo,
    search,
    sign_in,
)
from tests.support.stripe_stand_in import WEBHOOK_PATH, StripeStandIn, running_stripe_stand_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, needs_chromium]
IMAGE_SKU = "MUG-001"  # the seeded product that gets an image ("Classic mug")
WIDE, NARROW = 1280, 480  # window widths either side of the app's breakpoint (600, shop/config.py)
RENDITIONS_TIMEOUT = 120  # the worker makes them; slow on a busy machine
IMPORT_CSV = (
    "sku,name,description,price,currency,stock\n"
    "E2E-001,Imported kettle,From the browser,19.99,USD,5\n"
    "E2E-002,Imported mug,From the browser,7.50,USD,12\n"
    "E2E-003,Broken row,Bad price,abc,USD,1"
)


@pytest.fixture
def stripe() -> Iterator[StripeStandIn]:
    """The Stripe stand-in the stack pays through (it posts its events to the stack)."""
    with running_stripe_stand_in() as fake:
        yield fake


@pytest.fixture
def stack_env(stripe: StripeStandIn) -> dict[str, str]:
    """Payments enabled, through the stand-in."""
    return {name: str(value) for name, value in stripe.settings(STRIPE_TIMEOUT_SECONDS=5).items()}


def patch_product(stack: Stack, pid: int, **fields: object) -> None:
    url = f"{stack.base}/api/v1/products/{pid}"
    etag = httpx.get(url, headers=stack.admin, timeout=30).headers["ETag"]
    response = httpx.patch(url, json=fields, headers={**stack.admin, "If-Match": etag}, timeout=30)
    assert response.status_code == 200, response.text


def set_stock(stack: Stack, pid: int, stock: int) -> None:
    patch_product(stack, pid, stock=stock)


def attach_image(stack: Stack, pid: int) -> dict[str, Any]:
    """Upload a product image as admin, wait for its renditions, attach it; return its metadata."""
    uploaded = httpx.post(
        f"{stack.base}/api/v1/files", headers=stack.admin, data={"purpose": "product_image"},
        files={"file": ("classic-mug.jpg", product_photo(), "image/jpeg")}, timeout=60,
    )  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    deadline = time.monotonic() + RENDITIONS_TIMEOUT
    while True:  # the worker makes the renditions
        info = httpx.get(f"{stack.base}/api/v1/files/{file_id}", headers=stack.admin, timeout=30)
        assert info.status_code == 200, info.text
        metadata: dict[str, Any] = info.json()
        if {"mobile", "desktop"} <= set(metadata["variants"]):
            break
        assert time.monotonic() < deadline, f"no renditions after {RENDITIONS_TIMEOUT}s: {metadata}"
        time.sleep(0.5)
    patch_product(stack, pid, image_file_id=file_id)
    return metadata


def check_image_served(tab: Tab, stack: Stack, image: dict[str, Any], variant: str) -> None:
    """The browser fetched `variant` of the image from the backend: 200, WebP, CORS allowed."""
    url_path = image["variants"][variant]["url"]  # content-addressed: ...?variant=X&v=<sha256>
    assert f"variant={variant}" in url_path, url_path
    response = tab.wait_for_response(re.escape(f"{stack.base}{url_path}"), timeout=60)
    assert response.status == 200, response
    assert response.mime_type == "image/webp", response
    origin = f"http://127.0.0.1:{stack.shop_port}"
    assert response.headers.get("access-control-allow-origin") == origin, response.headers
    assert "immutable" in response.headers.get("cache-control", ""), response.headers


def wait_for_image(tab: Tab, variant: str, aspect: float) -> None:
    """Wait until the image labelled with `variant` is on screen, drawn.

    Flutter gives an image no height until its bytes are decoded (and shows the error text
    instead when they cannot be), so the node must have the picture's aspect ratio; then the
    screen must show the picture there: the dark disc at its centre.
    """

    def drawn() -> bool:
        nodes = [
            node
            for node in tab.find(f"Product image ({variant})")
            if node.width > 0 and abs(node.height / node.width - aspect) < 0.05
        ]
        if not nodes:
            return False
        with Image.open(io.BytesIO(tab.screenshot_png())) as screen:
            pixel = screen.convert("RGB").getpixel((int(nodes[0].x), int(nodes[0].y)))
        return isinstance(pixel, tuple) and max(pixel) < 90

    try:
        poll(drawn, 60, f"the {variant} image, drawn", interval=0.5)
    except BrowserError as exc:
        raise BrowserError(f"{exc}; the page says:\n{tab.text()}") from None
    assert "Image not available" not in tab.text()


def add_from_details(tab: Tab, quantity: int) -> None:
    tab.click_until("Details", "Back to products", exact=True)
    tab.fill("Quantity", str(quantity))
    tab.click("Add to cart", exact=True)
    tab.wait_for_text(f"Cart ({quantity})")


def test_shopping_and_importing_in_the_browser(
    stack: Stack, shop_url: str, tab: Tab, artifacts: Path, stripe: StripeStandIn
) -> None:
    steps = Steps(tab, artifacts)
    image = attach_image(stack, product_id(stack, IMAGE_SKU))  # for the product page, below

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

    # a product's page shows its image in the rendition for the window's width: the browser
    # loads the content-addressed rendition straight from the backend (CORS)
    aspect = image["variants"]["desktop"]["height"] / image["variants"]["desktop"]["width"]
    search(tab, IMAGE_SKU)
    tab.enable_network()
    tab.click_until("Details", "Back to products", exact=True)
    check_image_served(tab, stack, image, "desktop")
    tab.wait_for_text("Product image (desktop): Classic mug")
    wait_for_image(tab, "desktop", aspect)
    steps.shot("product-image-desktop")
    tab.set_viewport(NARROW, 900)  # a phone-sized window: the mobile rendition replaces it
    tab.wait_for_text("Product image (mobile): Classic mug")
    check_image_served(tab, stack, image, "mobile")
    wait_for_image(tab, "mobile", aspect)
    steps.shot("product-image-mobile")
    tab.disable_network()
    tab.set_viewport(WIDE, 900)
    tab.wait_for_text("Product image (desktop): Classic mug")
    tab.click_until("Back to products", "Search products", exact=True)

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

    # a good order is placed and listed under "My orders"; paying it (Stripe's card step is
    # the stand-in's) confirms it, its payment and status following live
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
    tab.wait_for_text("Payment: not paid yet")
    tab.click_until("Pay", "Payment: waiting for the card (11.00 USD)", exact=True)
    tab.wait_for_text("is ready for the card step (11.00 USD)")
    steps.shot("payment-started")
    [intent_id] = stripe.intents
    stripe.webhook_url = f"{stack.base}{WEBHOOK_PATH}"
    stripe.complete(intent_id)  # the customer's card went through: Stripe sends its event
    assert stripe.delivered[-1][1] == 200, stripe.delivered
    tab.wait_for_text("Payment: paid (11.00 USD)")
    tab.wait_for_text("Status: confirmed")
    tab.wait_for_text("Notifications: 2")  # confirmed, and payment received
    moved = httpx.post(
        f"{stack.base}/api/v1/orders/{order_id}/status", json={"status": "shipped"},
        headers=stack.admin, timeout=30,
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    tab.wait_for_text("Status: shipped")
    tab.wait_for_text("Notifications: 3")
    steps.shot("my-orders-live-status")

    # as admin: import a CSV, watch the progress reach 100 %, read the row errors
    tab.click_until("Sign out", "Sign in to continue", exact=True)
    sign_in(tab, ADMIN, PASSWORD)
    tab.click_until("Import", "CSV content", exact=True)
    tab.fill("CSV content", IMPORT_CSV)
    # A click can be lost while Flutter settles the text field; once one lands, the button is
    # disabled and "Import N%" shows until the end, so clicking again cannot import twice.
    tab.click_until("Start import", "%", exact=True)
    tab.wait_for_text("Import 100%", timeout=60)
    tab.wait_for_text("Created 2, updated 0, failed 1")
    tab.wait_for_text("Row 3, price:")
    steps.shot("import-finished")
    imported = httpx.get(f"{stack.base}/api/v1/products", params={"q": "E2E-"}, timeout=30)
    assert sorted(p["sku"] for p in imported.json()) == ["E2E-001", "E2E-002"]
