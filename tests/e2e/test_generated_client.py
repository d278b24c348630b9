"""A client generated from our OpenAPI document by openapi-python-client runs the main flows.

The document is fetched from the Procfile stack in production mode, the
client is generated into a temporary package and imported, and every answer
is parsed by the generated models: a document that said something other than
what the server sends would fail here.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.support.accounts import PASSWORD, make_user
from tests.support.catalog import make_product
from tests.support.processes import BIN

pytestmark = pytest.mark.slow

PACKAGE = "flet_backend_generated"


@pytest.fixture
def base_url(app: object, tmp_path: Path, production_web: Callable[..., str]) -> str:
    """The production web process, with a buyer, an admin and a small catalog."""
    make_user("root@example.test", role="admin")
    make_user("ada@example.test")
    make_product("TEA-1", price="4.50", stock=5)
    make_product("MUG-1", price="8.00", stock=2)
    return production_web(FILES_DIR=str(tmp_path / "files"))


@pytest.fixture
def generated(base_url: str, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package generated from the running server's document."""
    document = httpx.get(f"{base_url}/api/v1/openapi.json", timeout=10).json()
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    done = subprocess.run(  # noqa: S603 - our own command line
        [str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json",
         "--output-path", PACKAGE, "--meta", "none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The generator skips (and says so) any operation or schema it cannot read.
    assert "Skipping" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def sign_in(package: ModuleType, base_url: str, email: str) -> Any:
    login = module(package, "api.auth.post_api_v1_auth_login")
    models = module(package, "models")
    anonymous = package.Client(base_url=base_url)
    pair = login.sync(client=anonymous, body=models.Login(email=email, password=PASSWORD))
    assert isinstance(pair, models.TokenPair), pair
    assert pair.token_type == "Bearer"
    return package.AuthenticatedClient(base_url=base_url, token=pair.access_token)


def test_the_generated_client_runs_the_main_flows(generated: ModuleType, base_url: str) -> None:
    models = module(generated, "models")
    buyer = sign_in(generated, base_url, "ada@example.test")

    me = module(generated, "api.users.get_api_v1_users_me").sync(client=buyer)
    assert isinstance(me, models.User)
    assert (me.email, me.role) == ("ada@example.test", "user")

    listing = module(generated, "api.products.get_api_v1_products")
    page = listing.sync_detailed(client=buyer, page_size=1, sort=models.GetApiV1ProductsSort.NAME)
    assert page.status_code == 200
    [first] = page.parsed
    assert isinstance(first, models.Product)
    assert first.price == "8.00"  # money is a decimal string, as documented
    assert json.loads(page.headers["X-Pagination"])["total"] == 2  # JSON text, as documented

    place = module(generated, "api.orders.post_api_v1_orders")
    lines = [models.OrderItem(product_id=first.id, quantity=2)]
    order = place.sync(client=buyer, body=models.OrderCreate(items=lines), idempotency_key="k-1")
    assert isinstance(order, models.Order), order
    assert (order.total, order.status) == ("16.00", "pending")
    again = place.sync(client=buyer, body=models.OrderCreate(items=lines), idempotency_key="k-1")
    assert isinstance(again, models.Order)
    assert again.id == order.id  # the retry returned the first answer

    short = place.sync(client=buyer, body=models.OrderCreate(items=lines))
    assert isinstance(short, models.Error)  # the error shape, parsed by its model
    assert (short.code, short.error) == (409, "insufficient_stock")

    read = module(generated, "api.orders.get_api_v1_orders_order_id").sync(
        client=buyer, order_id=order.id
    )
    assert isinstance(read, models.Order)
    assert [line.line_total for line in read.items] == ["16.00"]

    admin = sign_in(generated, base_url, "root@example.test")
    status = module(generated, "api.orders.post_api_v1_orders_order_id_status")
    change = models.OrderStatus(status=models.OrderStatusStatus.CONFIRMED)
    confirmed = status.sync(client=admin, order_id=order.id, body=change)
    assert isinstance(confirmed, models.Order), confirmed
    assert confirmed.status == "confirmed"

    missing = module(generated, "api.orders.get_api_v1_orders_order_id").sync_detailed(
        client=buyer, order_id=10**6
    )
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Error)
