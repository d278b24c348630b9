"""Every error, from Werkzeug, flask-smorest, services or bugs, has the one shape."""

from __future__ import annotations

import logging
from typing import Any

import peewee
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from backend import errors
from tests.support.helpers import assert_error, json_body

probe = Blueprint("probe", __name__, url_prefix="/probe")


class EchoSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1000))


@probe.route("/echo", methods=["POST"])
@probe.arguments(EchoSchema)
@probe.response(200, EchoSchema)
def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@probe.route("/conflict")
def conflict() -> None:
    raise errors.BusinessRuleViolation(
        "Not enough stock.", error="insufficient_stock", errors={"items": [{"product_id": 1}]}
    )


@probe.route("/rate-limited")
def rate_limited() -> None:
    raise errors.RateLimited("Slow down.", headers={"Retry-After": "7"})


@probe.route("/boom")
def boom() -> None:
    raise RuntimeError("secret internals: /etc/passwd SELECT * FROM user")


@probe.route("/database-down")
def database_down() -> None:
    raise peewee.OperationalError("could not connect to server at 10.0.0.1")


@pytest.fixture
def probe_client(app: Flask) -> FlaskClient:
    app.extensions["api"].register_blueprint(probe)
    return app.test_client()


def test_unknown_url_is_404_in_the_error_shape(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_with_allow_header(client: FlaskClient) -> None:
    response = client.delete("/healthz")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_invalid_body_is_422_with_field_errors(probe_client: FlaskClient) -> None:
    response = probe_client.post("/probe/echo", json={"quantity": 0, "extra": True})
    body = assert_error(response, 422, "validation_error")
    field_errors = body["errors"]["json"]
    assert set(field_errors) == {"name", "quantity", "extra"}


def test_valid_body_passes(probe_client: FlaskClient) -> None:
    response = probe_client.post("/probe/echo", json={"name": "x"})
    assert response.status_code == 200
    assert json_body(response) == {"name": "x", "quantity": 1}


def test_malformed_json_is_400_in_the_error_shape(probe_client: FlaskClient) -> None:
    response = probe_client.post(
        "/probe/echo", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "bad_request")


def test_oversized_body_is_413(make_app: Any) -> None:
    app = make_app(MAX_CONTENT_LENGTH=64)
    app.extensions["api"].register_blueprint(probe)
    response = app.test_client().post("/probe/echo", json={"name": "x" * 500})
    assert_error(response, 413, "payload_too_large")


def test_domain_error_keeps_its_slug_and_details(probe_client: FlaskClient) -> None:
    body = assert_error(probe_client.get("/probe/conflict"), 409, "insufficient_stock")
    assert body["status"] == "Conflict"
    assert body["errors"] == {"items": [{"product_id": 1}]}


def test_domain_error_headers_are_sent(probe_client: FlaskClient) -> None:
    response = probe_client.get("/probe/rate-limited")
    assert_error(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == "7"


def test_unhandled_exception_is_500_logged_with_traceback_and_hidden_from_client(
    probe_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = probe_client.get("/probe/boom")
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)
    assert "errors" not in body
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None or "exc_info" in str(logged[0].msg)


def test_unreachable_database_is_503_with_retry_after(probe_client: FlaskClient) -> None:
    response = probe_client.get("/probe/database-down")
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert "10.0.0.1" not in response.get_data(as_text=True)


def test_error_slugs_default_from_the_status() -> None:
    assert errors.NotFound("x").error == "not_found"
    assert errors.Forbidden("x").error == "forbidden"
    assert errors.Unauthorized("x").error == "unauthorized"
    assert errors.Conflict("x").error == "conflict"
    assert errors.ValidationFailed("x").status_code == 422
    assert errors.PreconditionFailed("x").status_code == 412
    assert errors.BusinessRuleViolation("x").status_code == 409
