"""The Flet shop signs in with GitHub and uploads with `FilePicker.upload`, in Chromium.

GitHub is a real local server (`tests/support/oauth_provider.py`) that the shop's Flet
`page.login` and the backend both talk to: the popup goes to its authorize page, which
signs the admin's GitHub account in at once and sends the browser back to the shop's
`/oauth_callback`; Flet trades the code for a GitHub access token, and the shop trades
that for the backend's tokens (`POST /auth/oauth/github/token`, which checks the token
with GitHub and links it to the admin by the verified email).

Then, as that admin, a product image and an import CSV are chosen in the browser's file
dialog (answered over CDP with `DOM.setFileInputFiles` on Flutter's file input) and sent by
the browser itself to upload URLs: a raw `PUT` with no token and no multipart. The product
shows its new image; the import runs to 100 %.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.browser import Tab
from tests.support.flet_shop import (
    ADMIN,
    FIRST_RENDER_TIMEOUT,
    Stack,
    Steps,
    needs_chromium,
    product_id,
    product_photo,
    search,
)
from tests.support.oauth_provider import CLIENT_ID, CLIENT_SECRET, Account, StandIn

pytestmark = [pytest.mark.e2e, pytest.mark.slow, needs_chromium]

IMAGE_SKU = "MUG-001"
IMPORT_CSV = (
    "sku,name,description,price,currency,stock\n"
    "PICK-001,Picked kettle,Sent by the file picker,21.00,USD,4\n"
    "PICK-002,Picked mug,Sent by the file picker,8.25,USD,9\n"
)


@pytest.fixture
def stack_env(stand_in: StandIn) -> dict[str, str]:
    """The backend with GitHub enabled, pointed at the stand-in."""
    settings = stand_in.settings()
    return {k: str(v) for k, v in settings.items() if k.startswith("OAUTH_GITHUB_")}


@pytest.fixture
def shop_env(stand_in: StandIn) -> dict[str, str]:
    """The shop with a GitHub app (the same client id as the backend's) on the stand-in."""
    return {
        "SHOP_GITHUB_CLIENT_ID": CLIENT_ID, "SHOP_GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "SHOP_GITHUB_AUTHORIZE_URL": f"{stand_in.base}/github/login/oauth/authorize",
        "SHOP_GITHUB_TOKEN_URL": f"{stand_in.base}/github/login/oauth/access_token",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the stand-in speaks plain HTTP on loopback
    }  # fmt: skip


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def test_github_sign_in_and_picker_uploads_in_the_browser(
    stack: Stack, stand_in: StandIn, tab: Tab, artifacts: Path, tmp_path: Path
) -> None:
    steps = Steps(tab, artifacts)
    stand_in.next_login = Account("github", "4242", ADMIN, email_verified=True)
    tab.intercept_file_choosers()

    # Sign in with GitHub: Flet's page.login in a popup, then the backend's exchange
    tab.wait_for_text("Sign in to continue", timeout=FIRST_RENDER_TIMEOUT)
    tab.click_until("Sign in with GitHub", f"Signed in as {ADMIN}", exact=True, timeout=90)
    steps.shot("signed-in-with-github")
    assert "POST /github/api/applications/our-client-id/token" in stand_in.calls
    identities = httpx.get(f"{stack.base}/api/v1/users/me/identities", headers=stack.admin)
    assert [(i["provider"], i["provider_user_id"]) for i in identities.json()] == [
        ("github", "4242")
    ]

    # a product image, chosen in the file dialog and PUT by the browser to an upload URL
    photo = write(tmp_path, "picked-mug.jpg", product_photo())
    tab.wait_for_text(f"{stack.products} products · page 1 of")
    search(tab, IMAGE_SKU)
    tab.click_until("Details", "Back to products", exact=True)
    tab.enable_network()
    tab.click("Upload image", exact=True)
    tab.choose_files([photo])
    tab.wait_for_text("Image uploaded: picked-mug.jpg", timeout=120)
    tab.wait_for_response(r"/api/v1/files/uploads/", timeout=30)
    # the preflight (Flutter's XHR is cross-origin) answers 200, then the PUT itself 201
    sent = [r for r in tab.responses if "/api/v1/files/uploads/" in r.url]
    put = next((r for r in sent if r.status == 201), None)
    assert put is not None, sent
    assert "authorization" not in put.request_headers, put.request_headers
    tab.disable_network()
    tab.wait_for_text("Product image (desktop): Classic mug", timeout=60)
    steps.shot("image-uploaded")
    pid = product_id(stack, IMAGE_SKU)
    product = httpx.get(f"{stack.base}/api/v1/products/{pid}", timeout=30).json()
    stored = httpx.get(
        f"{stack.base}/api/v1/files/{product['image_file_id']}", headers=stack.admin, timeout=30
    ).json()
    assert stored["filename"] == "picked-mug.jpg"
    assert stored["size"] == photo.stat().st_size

    # an import CSV, chosen in the file dialog: the PUT starts the job
    csv = write(tmp_path, "picked.csv", IMPORT_CSV.encode())
    tab.click_until("Back to products", "Search products", exact=True)
    tab.click_until("Import", "CSV content", exact=True)
    tab.click("Choose CSV file", exact=True)
    tab.choose_files([csv])
    tab.wait_for_text(f"Chosen: picked.csv ({csv.stat().st_size} bytes)")
    tab.click_until("Start import", "%", exact=True)
    tab.wait_for_text("Import 100%", timeout=90)
    tab.wait_for_text("Created 2, updated 0, failed 0")
    steps.shot("import-from-picked-file")
    imported = httpx.get(f"{stack.base}/api/v1/products", params={"q": "PICK-"}, timeout=30)
    assert sorted(p["sku"] for p in imported.json()) == ["PICK-001", "PICK-002"]
