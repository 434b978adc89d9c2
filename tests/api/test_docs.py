"""The API's reference: each operation declares the key it checks, and /docs and /redoc load
nothing but what the API itself serves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search_api.main import create_app

ADMIN_PREFIX = "/api/v1/admin/"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app().openapi()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def test_both_key_headers_are_security_schemes(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert sorted(schemes) == ["X-API-Key", "X-Admin-Key"]
    for name, scheme in schemes.items():
        assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", name)


def test_each_operation_lists_exactly_the_key_it_checks(schema: dict[str, Any]) -> None:
    listed = {(method, path): op.get("security") for method, path, op in operations(schema)}
    admin = {k: v for k, v in listed.items() if k[1].startswith(ADMIN_PREFIX)}
    tenant = {k: v for k, v in listed.items() if k[1].startswith("/api/") and k not in admin}
    open_ = {k: v for k, v in listed.items() if not k[1].startswith("/api/")}
    assert admin and tenant and open_
    assert all(v == [{"X-Admin-Key": []}] for v in admin.values()), admin
    assert all(v == [{"X-API-Key": []}] for v in tenant.values()), tenant
    assert all(v is None for v in open_.values()), open_


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_reference_pages_load_only_assets_the_api_serves(page: str) -> None:
    client = TestClient(create_app())
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert not re.search(r"(?i)(https?:)?//", html), "no address on another host, CDN or fonts"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
    assert "/openapi.json" in html
    assert client.get("/openapi.json").status_code == 200
