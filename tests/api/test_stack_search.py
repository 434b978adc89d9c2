"""Search over HTTP against the real stack: answer shape, tenant scope, cache, errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.api import samples
from tests.api.stack_helpers import TenantHandle, create_tenant, delete_tenant

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def tenant(api_url: str, admin_key: str) -> Iterator[TenantHandle]:
    handle = create_tenant(api_url, admin_key, "search")
    yield handle
    delete_tenant(api_url, admin_key, handle.tenant_id)


def search(api_url: str, tenant: TenantHandle, data: bytes, top_k: str = "5") -> httpx.Response:
    return httpx.post(
        f"{api_url}/api/v1/search",
        headers=tenant.headers,
        files={"file": ("query.jpg", data, "image/jpeg")},
        data={"topK": top_k},
        timeout=60,
    )


def test_search_answers_and_caches(api_url: str, tenant: TenantHandle) -> None:
    query = samples.jpeg(31)
    first = search(api_url, tenant, query)
    assert first.status_code == 200, first.text
    body = first.json()
    assert isinstance(body["results"], list)
    assert body["model"] == tenant.body["model"]
    assert body["collection"] == tenant.body["collection"]
    assert body["cached"] is False and body["tookMs"] >= 0
    second = search(api_url, tenant, query)
    assert second.status_code == 200
    assert second.json()["cached"] is True
    assert second.json()["results"] == body["results"]
    assert second.json()["tookMs"] >= 0
    other_top_k = search(api_url, tenant, query, top_k="6")
    assert other_top_k.json()["cached"] is False


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"", 400), (samples.TEXT, 415), (samples.truncated_jpeg(32), 400), (samples.bomb_png(), 413)],
)
def test_bad_query_image_is_refused(
    api_url: str, tenant: TenantHandle, data: bytes, status: int
) -> None:
    response = search(api_url, tenant, data)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("top_k", ["0", "101"])
def test_top_k_out_of_range_is_422(api_url: str, tenant: TenantHandle, top_k: str) -> None:
    assert search(api_url, tenant, samples.jpeg(33), top_k).status_code == 422


def test_similar_needs_a_known_searchable_image(api_url: str, tenant: TenantHandle) -> None:
    unknown = httpx.get(
        f"{api_url}/api/v1/images/{uuid.uuid4()}/similar", headers=tenant.headers, timeout=30
    )
    assert unknown.status_code == 404
    no_key = httpx.post(
        f"{api_url}/api/v1/search",
        files={"file": ("q.jpg", samples.jpeg(34), "image/jpeg")},
        timeout=30,
    )
    assert no_key.status_code == 401
