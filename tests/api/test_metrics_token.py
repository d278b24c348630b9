"""`/metrics` needs `METRICS_TOKEN` as a Bearer token once one is configured."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.support.helpers import assert_error

TOKEN = "scrape-secret-0123456789abcdef"  # noqa: S105 - a test value


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_metrics_refuse_a_scrape_without_the_token(
    make_app: Callable[..., Flask], headers: dict[str, str]
) -> None:
    client = make_app(METRICS_TOKEN=TOKEN).test_client()
    body = assert_error(client.get("/metrics", headers=headers), 401, "unauthorized")
    assert "METRICS_TOKEN" in body["message"]


def test_metrics_answer_a_scrape_with_the_token(make_app: Callable[..., Flask]) -> None:
    client = make_app(METRICS_TOKEN=TOKEN).test_client()
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "http_requests_total" in response.get_data(as_text=True)


def test_metrics_stay_open_without_a_token(make_app: Callable[..., Flask]) -> None:
    assert make_app().test_client().get("/metrics").status_code == 200
