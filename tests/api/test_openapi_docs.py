"""The OpenAPI document and its docs page: the schema is public and complete, the docs page is
for signed-in people and loads Swagger UI from this server, never from a CDN."""

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_the_schema_lists_every_endpoint_with_bearer_auth(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "cohortsync API"
    operations = {
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    }
    assert operations == {
        ("GET", "/api/v1/connections"),
        ("GET", "/api/v1/connections/{connection_id}"),
        ("POST", "/api/v1/connections"),
        ("PATCH", "/api/v1/connections/{connection_id}"),
        ("DELETE", "/api/v1/connections/{connection_id}"),
        ("POST", "/api/v1/connections/{connection_id}/test"),
        ("GET", "/api/v1/connections/{connection_id}/checks/{check_id}"),
        ("GET", "/api/v1/cohorts"),
        ("GET", "/api/v1/cohorts/{cohort_id}"),
        ("GET", "/api/v1/syncs"),
        ("POST", "/api/v1/syncs"),
        ("GET", "/api/v1/syncs/{sync_id}"),
        ("PATCH", "/api/v1/syncs/{sync_id}"),
        ("DELETE", "/api/v1/syncs/{sync_id}"),
        ("POST", "/api/v1/syncs/{sync_id}/pause"),
        ("POST", "/api/v1/syncs/{sync_id}/resume"),
        ("POST", "/api/v1/syncs/{sync_id}/runs"),
        ("GET", "/api/v1/syncs/{sync_id}/runs"),
        ("GET", "/api/v1/syncs/{sync_id}/runs/{run_id}"),
        ("GET", "/api/v1/syncs/{sync_id}/runs/{run_id}/errors"),
        ("GET", "/api/v1/syncs/{sync_id}/runs/{run_id}/exchanges"),
        ("POST", "/api/v1/syncs/{sync_id}/runs/{run_id}/retry-failed"),
        ("GET", "/api/v1/import-keys"),
        ("POST", "/api/v1/import-keys"),
        ("POST", "/api/v1/import-keys/{key_id}/revoke"),
    }
    assert schema["components"]["securitySchemes"]["TokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    for item in schema["paths"].values():
        for operation in item.values():
            assert operation["security"] == [{"TokenAuth": []}]


def test_the_docs_page_asks_to_log_in(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_docs_page_loads_swagger_from_this_server_only(viewer_client):
    response = viewer_client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'<(?:link|script)\b[^>]*\b(?:src|href)="([^"]+)"', html)
    assert assets
    assert all(url.startswith("/static/") for url in assets), assets
    assert "/static/ninja/swagger-ui-bundle.js" in assets
    for url in assets:
        assert finders.find(url.removeprefix("/static/")), url


def test_the_docs_page_leads_back_to_the_app(viewer_client):
    """It had no way back (#15): a bar links home and to the tokens the calls need."""
    html = viewer_client.get("/api/v1/docs").content.decode()
    bar = html.split('id="back-to-app"', 1)[1].split("</nav>", 1)[0]
    assert 'href="/"' in bar
    assert 'href="/accounts/profile/"' in bar
