"""The door to outside services: bounded retries and the circuit breaker shared through Redis.

The outside service is a real local HTTP server (the providers' stand-in), told to
fail, hang or answer; the breaker's state is in the test Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from backend import outside
from backend.outside import breaker
from backend.redis_store import get_redis
from tests.support.oauth_provider import StandIn

FAST = {"PROVIDER_BREAKER_FAILURES": 3, "PROVIDER_BREAKER_COOLDOWN_SECONDS": 0.6}


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """An app whose breakers open after 3 failures, for 0.6 s."""
    flask_app = make_app(**FAST)
    with flask_app.app_context():
        yield flask_app


def get(stand_in: StandIn, *, service: str = "svc", timeout: float = 1.0) -> outside.Reply:
    """GET something of the stand-in through the door."""
    return outside.request("GET", f"{stand_in.base}/nothing", service=service, timeout=timeout)


def fail(stand_in: StandIn, times: int) -> None:
    """Make `times` calls that each end in `Unreachable` (the stand-in answers 500)."""
    stand_in.mode = "error"
    for _ in range(times):
        with pytest.raises(outside.Unreachable):
            get(stand_in)


def test_an_answer_below_500_comes_back_and_the_healthy_path_writes_nothing(
    app: Flask, stand_in: StandIn
) -> None:
    reply = get(stand_in)
    assert reply.status == 404
    assert not get_redis().exists("breaker:svc")


def test_a_500_is_unreachable_and_not_repeated(app: Flask, stand_in: StandIn) -> None:
    fail(stand_in, 1)
    assert len(stand_in.calls) == 1


def test_a_get_answered_503_is_retried_with_backoff_and_then_succeeds(
    app: Flask, stand_in: StandIn
) -> None:
    stand_in.failures = 2
    assert get(stand_in).status == 404
    assert len(stand_in.calls) == 3


def test_a_post_is_not_repeated_unless_marked_idempotent(app: Flask, stand_in: StandIn) -> None:
    stand_in.failures = 5
    with pytest.raises(outside.Unreachable):
        outside.request("POST", f"{stand_in.base}/x", service="svc", timeout=1.0)
    assert len(stand_in.calls) == 1
    with pytest.raises(outside.Unreachable):
        outside.request("POST", f"{stand_in.base}/x", service="svc", timeout=1.0, idempotent=True)
    assert len(stand_in.calls) == 1 + 1 + outside.RETRIES


def test_a_read_that_timed_out_is_not_repeated(app: Flask, stand_in: StandIn) -> None:
    stand_in.mode, stand_in.slow_seconds = "slow", 0.5
    started = time.monotonic()
    with pytest.raises(outside.Unreachable):
        get(stand_in, timeout=0.2)
    assert time.monotonic() - started < 0.45
    assert len(stand_in.calls) == 1


def test_a_refused_connection_is_retried_then_unreachable(app: Flask, stand_in: StandIn) -> None:
    stand_in.stop()
    with pytest.raises(outside.Unreachable) as caught:
        get(stand_in)
    assert not isinstance(caught.value, outside.CircuitOpen)
    assert caught.value.retry_after == outside.RETRY_AFTER_SECONDS


def test_the_breaker_opens_after_failures_in_a_row_and_refuses_without_calling(
    app: Flask, stand_in: StandIn
) -> None:
    fail(stand_in, 2)
    with pytest.raises(outside.Unreachable) as third:
        get(stand_in)
    assert third.value.retry_after == 1  # the cool-down, in whole seconds (at least 1)
    calls = len(stand_in.calls)
    started = time.monotonic()
    with pytest.raises(outside.CircuitOpen) as refused:
        get(stand_in)
    assert time.monotonic() - started < 0.1
    assert refused.value.retry_after >= 1
    assert len(stand_in.calls) == calls


def test_an_answer_resets_the_count_of_failures(app: Flask, stand_in: StandIn) -> None:
    fail(stand_in, 2)
    stand_in.mode = "ok"
    get(stand_in)
    fail(stand_in, 2)
    stand_in.mode = "ok"
    assert get(stand_in).status == 404  # still closed: the failures were not in a row


def test_after_the_cool_down_one_probe_closes_it(app: Flask, stand_in: StandIn) -> None:
    fail(stand_in, 3)
    time.sleep(0.7)
    stand_in.mode = "ok"
    assert get(stand_in).status == 404
    assert not get_redis().exists("breaker:svc")
    assert get(stand_in).status == 404


def test_a_failed_probe_opens_it_for_another_cool_down(app: Flask, stand_in: StandIn) -> None:
    fail(stand_in, 3)
    time.sleep(0.7)
    fail(stand_in, 1)  # the probe
    calls = len(stand_in.calls)
    with pytest.raises(outside.CircuitOpen):
        get(stand_in)
    assert len(stand_in.calls) == calls


def test_only_one_caller_probes_a_half_open_breaker(app: Flask, stand_in: StandIn) -> None:
    fail(stand_in, 3)
    time.sleep(0.7)
    first = breaker.check("svc", probe_seconds=5)
    second = breaker.check("svc", probe_seconds=5)
    assert (first.allowed, first.probe) == (True, True)
    assert not second.allowed
    assert second.retry_after >= 1


def test_a_probe_that_never_reports_is_given_up(app: Flask, stand_in: StandIn) -> None:
    fail(stand_in, 3)
    time.sleep(0.7)
    assert breaker.check("svc", probe_seconds=0.2).probe  # its process "dies" here
    time.sleep(0.3)
    assert breaker.check("svc", probe_seconds=0.2).probe


def test_every_process_shares_one_breaker_per_service(
    app: Flask, make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    # A cooldown the test cannot outlive: building the second app on a loaded machine can
    # take longer than FAST's 0.6 s, and a half-open breaker would let the probe through.
    slow_to_cool = {**FAST, "PROVIDER_BREAKER_COOLDOWN_SECONDS": 60}
    with make_app(**slow_to_cool).app_context():
        fail(stand_in, 3)
    with make_app(**slow_to_cool).app_context():  # another process's app on the same Redis
        with pytest.raises(outside.CircuitOpen):
            get(stand_in)
        stand_in.mode = "ok"
        assert get(stand_in, service="other").status == 404  # breakers are per service


def test_without_redis_calls_still_go_out(
    make_app: Callable[..., Flask], stand_in: StandIn
) -> None:
    lost = make_app(REDIS_URL="redis://127.0.0.1:9/0", **FAST)  # nothing listens on port 9
    with lost.app_context():
        stand_in.mode = "error"
        for _ in range(4):  # more than the threshold: no breaker to open
            with pytest.raises(outside.Unreachable) as caught:
                get(stand_in)
            assert not isinstance(caught.value, outside.CircuitOpen)
        stand_in.mode = "ok"
        assert get(stand_in).status == 404


def test_metrics_show_calls_latency_and_breaker_state(app: Flask, stand_in: StandIn) -> None:
    get(stand_in)
    fail(stand_in, 3)
    with pytest.raises(outside.CircuitOpen):
        get(stand_in)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'outside_calls_total{outcome="refused",service="svc"}' in text
    assert 'outside_calls_total{outcome="ok",service="svc"}' in text
    assert 'outside_call_duration_seconds_count{service="svc"}' in text
    assert 'outside_breaker_state{service="svc"} 1.0' in text
    time.sleep(0.7)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'outside_breaker_state{service="svc"} 2.0' in text
    stand_in.mode = "ok"
    get(stand_in)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'outside_breaker_state{service="svc"} 0.0' in text
