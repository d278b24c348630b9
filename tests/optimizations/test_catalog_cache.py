"""The optimisation layer's catalog cache and replay: same bytes as Flask's, never stale.

Every app here is built with `OPTIMIZATIONS=True`, so these run in every CI leg.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, Response
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from werkzeug.test import TestResponse

from backend import cache
from backend.models import Product
from backend.optimizations import catalog_cache, replay
from backend.optimizations.local_cache import LocalCache, Version, VersionReader
from backend.redis_store import get_redis
from backend.services.products import CACHE_NAMESPACE
from tests.support.accounts import login, make_user
from tests.support.catalog import make_product
from tests.support.log_capture import captured_logs

API = "/api/v1"
READS = [
    f"{API}/products/{{id}}",
    f"{API}/products",
    f"{API}/products?page=1&page_size=1&sort=-name",
]


@pytest.fixture
def make_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """Apps with the optimisation layer on."""

    def build(**overrides: Any) -> Flask:
        return make_app(**{"OPTIMIZATIONS": True, **overrides})

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The app under test (layer on), inside its app context."""
    flask_app = make_app()
    with flask_app.app_context():
        yield flask_app


def _wire(response: TestResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.items() if k != "X-Request-ID"]
    return response.status_code, headers, response.get_data()


def _admin_headers(client: FlaskClient) -> dict[str, str]:
    make_user("root@example.test", role="admin")
    return login(client, "root@example.test").headers


def _names(response: TestResponse) -> list[str]:
    return [p["name"] for p in response.get_json()]


def _local_entries(app: Flask) -> int:
    return len(catalog_cache.store(app))


def _replays(app: Flask) -> list[str]:
    return [key for key in catalog_cache.store(app).held_keys() if key.startswith("wsgi ")]


@pytest.mark.parametrize("path", READS)
def test_a_cached_response_is_byte_for_byte_the_computed_one(
    app: Flask, client: FlaskClient, path: str
) -> None:
    apple = make_product("A", name="Apple")
    make_product("B", name="Banana")
    url = path.format(id=apple.id)
    computed = client.get(url)
    assert _local_entries(app) == 2  # the view's response, and the whole one for the replay
    replayed = client.get(url)
    assert computed.status_code == 200
    assert _wire(replayed) == _wire(computed)
    head = client.head(url)
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(computed.data)))


def test_if_none_match_answers_304_the_same_way_from_the_cache(client: FlaskClient) -> None:
    url = f"{API}/products/{make_product('A').id}"
    etag = client.get(url).headers["ETag"]
    fresh = _wire(client.get(url, headers={"If-None-Match": etag}))  # cached by now
    cache.invalidate(CACHE_NAMESPACE)  # the same, computed
    computed = _wire(client.get(url, headers={"If-None-Match": etag}))
    assert fresh == computed
    assert fresh[0] == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_what_admins_see_is_never_served_to_others(client: FlaskClient) -> None:
    admin = _admin_headers(client)
    make_product("A", name="Apple")
    hidden = make_product("B", name="Banana", active=False)
    ada = make_user("ada@example.test")
    assert ada.role == "user"
    user = login(client, "ada@example.test").headers
    for _ in range(2):  # computed, then cached
        assert _names(client.get(f"{API}/products", headers=admin)) == ["Apple", "Banana"]
        assert client.get(f"{API}/products/{hidden.id}", headers=admin).status_code == 200
        assert _names(client.get(f"{API}/products")) == ["Apple"]
        assert _names(client.get(f"{API}/products", headers=user)) == ["Apple"]
        assert client.get(f"{API}/products/{hidden.id}").status_code == 404
        assert client.get(f"{API}/products/{hidden.id}", headers=user).status_code == 404


def test_reads_are_cached_and_writes_invalidate(client: FlaskClient) -> None:
    admin = _admin_headers(client)
    apple = make_product("A", name="Apple")
    assert _names(client.get(f"{API}/products", headers=admin)) == ["Apple"]
    Product.update(name="Changed behind the cache").execute()
    assert _names(client.get(f"{API}/products", headers=admin)) == ["Apple"]  # cached
    etag = client.get(f"{API}/products/{apple.id}", headers=admin).headers["ETag"]
    client.patch(
        f"{API}/products/{apple.id}", json={"stock": 3}, headers={**admin, "If-Match": etag}
    )
    assert _names(client.get(f"{API}/products", headers=admin)) == ["Changed behind the cache"]


def test_a_bad_token_is_still_401_on_a_cached_read(client: FlaskClient) -> None:
    url = f"{API}/products/{make_product('A').id}"
    assert client.get(url).status_code == 200
    response = client.get(url, headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401


def test_a_write_in_one_process_is_seen_at_once_by_another(
    make_app: Callable[..., Flask],
) -> None:
    writer_app, reader_app = make_app(), make_app()  # two processes' worth of state
    writer, reader = writer_app.test_client(), reader_app.test_client()
    admin = _admin_headers(writer)
    with writer_app.app_context():
        apple = make_product("A", name="Apple", stock=5)
    url = f"{API}/products/{apple.id}"
    for _ in range(2):
        assert reader.get(url).get_json()["stock"] == 5
        assert _names(reader.get(f"{API}/products")) == ["Apple"]
    assert _local_entries(reader_app) == 4  # each: the view's response and the whole one
    etag = writer.get(url).headers["ETag"]
    changed = writer.patch(url, json={"stock": 7, "name": "Apricot"},
                           headers={**admin, "If-Match": etag})  # fmt: skip
    assert changed.status_code == 200
    assert reader.get(url).get_json()["stock"] == 7
    assert _names(reader.get(f"{API}/products")) == ["Apricot"]
    assert reader.get(url, headers={"If-None-Match": etag}).status_code == 200


def test_an_order_in_another_process_updates_the_cached_stock(
    make_app: Callable[..., Flask],
) -> None:
    buyer_app, reader_app = make_app(), make_app()
    buyer, reader = buyer_app.test_client(), reader_app.test_client()
    with buyer_app.app_context():
        apple = make_product("A", stock=5)
        make_user("ada@example.test")
    url = f"{API}/products/{apple.id}"
    assert reader.get(url).get_json()["stock"] == 5
    order = {"items": [{"product_id": apple.id, "quantity": 2}]}
    placed = buyer.post(f"{API}/orders", json=order,
                        headers=login(buyer, "ada@example.test").headers)  # fmt: skip
    assert placed.status_code == 201
    assert reader.get(url).get_json()["stock"] == 3


def test_a_redis_that_lost_its_data_does_not_revive_old_entries(
    app: Flask, client: FlaskClient
) -> None:
    apple = make_product("A", name="Apple")
    url = f"{API}/products/{apple.id}"
    assert client.get(url).get_json()["name"] == "Apple"
    Product.update(name="Changed").execute()
    assert client.get(url).get_json()["name"] == "Apple"  # cached, as intended
    get_redis().flushdb()  # a restarted Redis: the version is gone, not reset to an old value
    assert client.get(url).get_json()["name"] == "Changed"


def test_reads_are_computed_when_redis_cannot_confirm_the_version(
    make_app: Callable[..., Flask],
) -> None:
    make_app()
    product = make_product("A", name="Apple")
    offline = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    client = offline.test_client()
    for name in ("Apple", "Changed"):
        Product.update(name=name).execute()
        assert client.get(f"{API}/products/{product.id}").get_json()["name"] == name
    assert _local_entries(offline) == 0


def test_invalidate_replaces_the_version_token(app: Flask) -> None:
    client = get_redis()
    first = cache.read_version(client, CACHE_NAMESPACE)
    assert cache.read_version(client, CACHE_NAMESPACE) == first
    cache.invalidate(CACHE_NAMESPACE)
    assert cache.read_version(client, CACHE_NAMESPACE) != first


# --- the building blocks -------------------------------------------------------------------


def test_a_value_computed_under_an_old_version_is_not_stored_under_a_new_one() -> None:
    tokens = iter(["v1", "v2"])
    store: LocalCache[str] = LocalCache(VersionReader(lambda: next(tokens)))
    old = store.current()
    assert store.get("k", old) is None
    new = store.current()  # a write happened meanwhile
    assert store.get("k", new) is None
    store.put("k", "computed before the write", old)
    assert store.get("k", new) is None
    assert store.get("k", old) is None  # an old reading does not bring the old entries back
    store.put("k", "fresh", new)
    assert store.get("k", new) == "fresh"


def test_a_full_local_cache_starts_again() -> None:
    store: LocalCache[int] = LocalCache(VersionReader(lambda: "v"), 2)
    version = store.current()
    assert store.get("a", version) is None
    for n, key in enumerate("abc"):
        store.put(key, n, version)
    assert len(store) == 1
    assert store.get("c", version) == 2


def test_concurrent_callers_share_round_trips_but_never_one_begun_before_they_asked() -> None:
    started: list[int] = []
    release = threading.Event()
    first_began = threading.Event()

    def read() -> str:
        started.append(1)
        if len(started) == 1:
            first_began.set()
            release.wait(5)
        return f"v{len(started)}"

    reader = VersionReader(read)
    results: dict[str, Version] = {}

    def call(name: str) -> None:
        results[name] = reader.current()

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert first_began.wait(5)
    late = [threading.Thread(target=call, args=(f"late{i}",)) for i in range(5)]
    for thread in late:
        thread.start()
    release.set()
    for thread in (first, *late):
        thread.join(5)
    assert results["first"] == Version(1, "v1")
    # The late callers arrived while round trip 1 was in flight: none may use it.
    assert all(results[f"late{i}"].number > 1 for i in range(5))
    assert all(results[f"late{i}"].token == f"v{results[f'late{i}'].number}" for i in range(5))
    assert len(started) <= 6  # never more than one round trip per caller


def test_a_failed_round_trip_raises_for_its_callers_and_the_next_one_retries() -> None:
    outcomes: list[str | Exception] = [redis.ConnectionError("down"), "v2"]

    def read() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    reader = VersionReader(read)
    with pytest.raises(redis.RedisError):
        reader.current()
    assert reader.current().token == "v2"


# --- replayed in front of Flask ------------------------------------------------------------


def _serve_until_replayed(client: FlaskClient, url: str) -> TestResponse:
    """Computed, then answered from the view's cache (and kept whole), then replayed."""
    for _ in range(2):
        assert client.get(url).status_code == 200
    assert _replays(client.application)
    return client.get(url)


def _flask_must_not_run(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("Flask handled a request the replay should have answered")

    monkeypatch.setattr(app, "full_dispatch_request", refuse)


def _product_reads_counted() -> float:
    labels = {"method": "GET", "endpoint": "/api/v1/products/<int:product_id>", "status": "200"}
    value = REGISTRY.get_sample_value("http_requests_total", labels)
    return value or 0.0


# What each owner of a request hook `create_app` installs does for a replayable read
# (an anonymous GET without Cookie, Origin or conditional headers): the replay's contract.
STOOD_IN_FOR = {
    "backend.logs": "the request id and the access line: the replay makes both",
    "backend.metrics": "the request metric: the replay records it",
    "backend.security_headers": "headers only: kept with the response",
    "backend.ratelimit": "nothing: reads carry no limits",
    "flask_limiter._extension": "nothing: its request filter lets every read through",
    "backend.api.parsing": "refuses a NUL in the URL: such an answer is an error, never kept",
    "backend.db": "closes the connection, which a replay never opens",
    "flask_cors.extension": "CORS headers for requests with Origin, which go through Flask",
    "backend.api.jobs_dashboard": "guards the jobs dashboard's blueprint: never a catalog read",
    "rq_dashboard.web": "the jobs dashboard blueprint's own hook: never a catalog read",
}


def _owner(hook: Any) -> str:
    function = getattr(hook, "func", hook)  # functools.partial
    return str(getattr(getattr(function, "__func__", function), "__module__", "?"))


@pytest.mark.parametrize("cors", [[], ["https://shop.test"]])
def test_the_replay_stands_in_only_for_hooks_whose_effects_it_reproduces(
    make_app: Callable[..., Flask], cors: list[str]
) -> None:
    app = make_app(CORS_ORIGINS=cors)
    # A new hook in the main path fails this: decide what it does for a replayed read.
    assert {_owner(hook) for hook in replay.request_hooks(app)} <= set(STOOD_IN_FOR)
    assert isinstance(app.wsgi_app, replay.ReplayMiddleware)
    assert app.wsgi_app.hooks == replay.request_hooks(app)


@pytest.mark.parametrize("path", READS)
def test_anonymous_reads_are_replayed_byte_for_byte_without_flask(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    apple = make_product("A", name="Apple")
    make_product("B", name="Banana")
    url = path.format(id=apple.id)
    computed = client.get(url)
    _serve_until_replayed(client, url)
    _flask_must_not_run(app, monkeypatch)
    replayed = client.get(url, headers={"X-Request-ID": "trace-me"})
    assert _wire(replayed) == _wire(computed)
    assert replayed.headers["X-Request-ID"] == "trace-me"
    generated = client.get(url).headers["X-Request-ID"]
    assert len(generated) == 32
    assert generated != replayed.headers["X-Request-ID"]


def test_a_replayed_read_is_logged_and_counted_like_any_other(
    app: Flask, client: FlaskClient
) -> None:
    url = f"{API}/products/{make_product('A').id}"
    with captured_logs(app) as lines:
        client.get(url, headers={"X-Request-ID": "through-flask"})
        through_flask = lines.access()
        _serve_until_replayed(client, url)
        counted_before = _product_reads_counted()
        lines.clear()
        client.get(url, headers={"X-Request-ID": "replayed"})
        replayed = lines.all()
    assert _product_reads_counted() == counted_before + 1
    assert len(through_flask) == len(replayed) == 1
    assert list(replayed[0]) == list(through_flask[0])
    line = replayed[0]
    assert (line["method"], line["path"], line["status"], line["request_id"]) == (
        "GET", url, 200, "replayed",
    )  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer nonsense"}, {"If-None-Match": '"x"'}, {"Origin": "https://a.test"},
     {"Cookie": "session=x"}],
)  # fmt: skip
def test_requests_that_may_differ_go_through_flask(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    url = f"{API}/products/{make_product('A').id}"
    _serve_until_replayed(client, url)
    _flask_must_not_run(app, monkeypatch)
    if "Cookie" in headers:  # the test client sends its own cookies only
        client.set_cookie("session", "x")
        headers = {}
    with pytest.raises(AssertionError, match="Flask handled"):
        client.get(url, headers=headers)
    with pytest.raises(AssertionError, match="Flask handled"):
        client.head(url)


def test_a_write_elsewhere_ends_the_replay_at_once(make_app: Callable[..., Flask]) -> None:
    writer_app, reader_app = make_app(), make_app()
    writer, reader = writer_app.test_client(), reader_app.test_client()
    admin = _admin_headers(writer)
    with writer_app.app_context():
        apple = make_product("A", name="Apple")
    url = f"{API}/products/{apple.id}"
    assert _serve_until_replayed(reader, url).get_json()["name"] == "Apple"
    etag = writer.get(url).headers["ETag"]
    changed = writer.patch(url, json={"name": "Apricot"}, headers={**admin, "If-Match": etag})
    assert changed.status_code == 200
    assert reader.get(url).get_json()["name"] == "Apricot"
    assert reader.get(f"{API}/products").get_json()[0]["name"] == "Apricot"


def _stamp(response: Response) -> Response:
    response.headers["X-Stamp"] = "per request"
    return response


def test_a_hook_added_after_startup_turns_the_replay_off(app: Flask, client: FlaskClient) -> None:
    url = f"{API}/products/{make_product('A').id}"
    app.after_request(_stamp)
    for _ in range(4):
        assert client.get(url).headers["X-Stamp"] == "per request"
    assert _replays(app) == []
