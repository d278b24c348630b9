"""OpenAPI document and the offline docs UI."""

from __future__ import annotations

from flask.testing import FlaskClient

import backend
from tests.support.helpers import json_body


def test_openapi_document_takes_title_version_and_intro_from_the_package(
    client: FlaskClient,
) -> None:
    spec = json_body(client.get("/api/v1/openapi.json"))
    assert spec["info"]["title"] == "flet-backend"
    assert spec["info"]["version"] == backend.__version__
    assert spec["info"]["description"].startswith("flet-backend: the server Flet apps talk to.")
    assert "Every error has one shape" in spec["info"]["description"]
    assert {"/healthz", "/readyz", "/metrics"} <= spec["paths"].keys()
    assert "error" in spec["components"]["schemas"]["Error"]["properties"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_has_a_summary(client: FlaskClient) -> None:
    spec = json_body(client.get("/api/v1/openapi.json"))
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def test_docs_page_loads_its_assets_from_this_server(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert 'src="/api/v1/docs/assets/swagger-ui-bundle.js"' in page
    assert "//cdn" not in page
    assert "unpkg" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        response = client.get(f"/api/v1/docs/assets/{asset}")
        assert response.status_code == 200
        assert len(response.data) > 1000


def test_docs_assets_cannot_escape_their_folder(client: FlaskClient) -> None:
    assert client.get("/api/v1/docs/assets/../../__init__.py").status_code == 404
