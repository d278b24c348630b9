"""CORS: only configured origins may call the API from a browser."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask


def test_configured_origin_gets_preflight_and_exposed_headers(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(CORS_ORIGINS=["http://localhost:8550"]).test_client()
    preflight = client.options(
        "/api/v1/openapi.json",
        headers={
            "Origin": "http://localhost:8550",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Idempotency-Key",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:8550"
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "idempotency-key" in allowed
    response = client.get("/api/v1/openapi.json", headers={"Origin": "http://localhost:8550"})
    assert "X-Pagination" in response.headers["Access-Control-Expose-Headers"]


def test_other_origins_get_no_cors_headers(make_app: Callable[..., Flask]) -> None:
    for origins in ([], ["http://localhost:8550"]):
        client = make_app(CORS_ORIGINS=origins).test_client()
        response = client.get("/api/v1/openapi.json", headers={"Origin": "http://evil.test"})
        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers
