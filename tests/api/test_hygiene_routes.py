"""Malformed metadata, text and filters through the routes, with fake clients: each is a 400
with the reason, and nothing is written (no blob; the database, a fake that fails the test when
touched, is never reached)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api import samples
from tests.api.conftest import ADMIN_KEY, API_KEY, FakeServices
from tests.api.test_routes import nothing_written

AUTH = {"X-API-Key": API_KEY}


def upload(client: TestClient, **fields: bytes) -> tuple[int, str]:
    response = client.post(
        "/api/v1/images",
        headers=AUTH,
        files={"file": ("photo.jpg", samples.jpeg(), "image/jpeg")},
        data=fields,
    )
    return response.status_code, response.json()["detail"]


@pytest.mark.parametrize("case", samples.BAD_METADATA)
def test_malformed_metadata_is_400_and_writes_nothing(
    client: TestClient, fake_services: FakeServices, case: str
) -> None:
    raw, hint = samples.BAD_METADATA[case]
    status, detail = upload(client, metadata=raw)
    assert status == 400, detail
    assert hint in detail
    assert nothing_written(fake_services)


def test_uploaded_by_that_is_not_utf8_is_400_and_writes_nothing(
    client: TestClient, fake_services: FakeServices
) -> None:
    status, detail = upload(client, uploadedBy=b"ren\xe9")
    assert status == 400, detail
    assert "uploadedBy is not valid UTF-8" in detail
    assert nothing_written(fake_services)


BAD_FILTERS = {
    "number-beyond-double": ('{"width": {"gte": 1e400}}', "beyond what a double holds"),
    "nan": ('{"metadata.n": {"lt": NaN}}', "NaN, which is not JSON"),
    "lone-surrogate": ('{"metadata.k": "\\ud800"}', "lone surrogate"),
    "nul": ('{"uploadedBy": "a\\u0000"}', "NUL character"),
    "deep-nesting": ('{"uploadedBy": ' + "[" * 5_000 + "]" * 5_000 + "}", "levels deep"),
    "duplicate-key": ('{"width": 1, "width": 2}', "twice"),
}


@pytest.mark.parametrize("case", BAD_FILTERS)
def test_malformed_filter_is_400_wherever_it_is_taken(client: TestClient, case: str) -> None:
    raw, hint = BAD_FILTERS[case]
    answers = [
        client.get("/api/v1/images", params={"filter": raw}, headers=AUTH),
        client.get(
            "/api/v1/images/00000000-0000-0000-0000-000000000001/similar",
            params={"filter": raw},
            headers=AUTH,
        ),
        client.post(
            "/api/v1/search",
            headers=AUTH,
            files={"file": ("q.jpg", samples.jpeg(), "image/jpeg")},
            data={"filter": raw},
        ),
    ]
    for response in answers:
        assert response.status_code == 400, response.text
        assert hint in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        '{"nearThreshold": 1e400}',
        '{"nearThreshold": NaN}',
        '{"nearThreshold": "\\ud800"}',
        '{"nearThreshold": {"\\udfff": -Infinity}}',
    ],
)
def test_a_json_body_fastapi_refuses_is_422_whatever_it_holds(
    client: TestClient, body: str
) -> None:
    """FastAPI's answer quotes the input: NaN, 1e400 or a lone surrogate made it a 500."""
    json_body = {"content-type": "application/json"}
    answers = [
        client.put("/api/v1/duplicates/settings", headers={**AUTH, **json_body}, content=body),
        client.post(
            "/api/v1/admin/tenants",
            headers={"X-Admin-Key": ADMIN_KEY, **json_body},
            content=body.replace("nearThreshold", "tenantId"),
        ),
    ]
    for response in answers:
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][0] == "body"
