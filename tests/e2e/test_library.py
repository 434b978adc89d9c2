"""A tenant's images, whole, over real HTTP: the listing with filters and a stable cursor, the
original bytes and thumbnails, filtered search, and deletion from everywhere."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image

from deeplens import clients, vectors
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle, create_tenant
from tests.faults.harness import assert_healed, upload_all


def upload(api_url: str, tenant: TenantHandle, data: bytes, name: str, **form: str) -> str:
    response = httpx.post(
        f"{api_url}/api/v1/images",
        headers=tenant.headers,
        files={"file": (name, data, "image/png" if name.endswith(".png") else "image/jpeg")},
        data=form,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["imageId"])


@pytest.fixture(scope="module")
def library(stack: Stack, api_url: str, admin_key: str) -> dict[str, Any]:
    """A tenant with 12 searchable images: 8 by alice (camera x100 on the even ones), 4 by bob,
    one of bob's a PNG."""
    tenant = create_tenant(api_url, admin_key, "library")
    ids: dict[str, str] = {}
    for n in range(12):
        who = "alice" if n < 8 else "bob"
        meta = {"camera": "x100" if n % 2 == 0 else "z9", "n": n}
        fmt = "PNG" if n == 11 else "JPEG"
        data = synthetic.photo_bytes(80_000 + n, 320, 240, fmt)
        name = f"{n}.{'png' if fmt == 'PNG' else 'jpg'}"
        ids[name] = upload(api_url, tenant, data, name, uploadedBy=who, metadata=json.dumps(meta))
    assert_healed(stack, tenant, list(ids.values()))
    return {"tenant": tenant, "ids": ids}


def get(api_url: str, tenant: TenantHandle, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{api_url}{path}", headers=tenant.headers, params=params, timeout=30)


def test_the_listing_pages_and_filters(api_url: str, library: dict[str, Any]) -> None:
    tenant, ids = library["tenant"], library["ids"]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = get(api_url, tenant, "/api/v1/images", **params).json()
        seen += [item["imageId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids.values()) and len(seen) == len(set(seen))
    newest = get(api_url, tenant, "/api/v1/images", limit=1).json()["items"][0]
    assert newest["imageId"] == ids["11.png"], "newest first"
    assert newest["contentUrl"].endswith(f"/{ids['11.png']}/content")

    def listed(filter_: dict[str, Any]) -> set[str]:
        page = get(api_url, tenant, "/api/v1/images", filter=json.dumps(filter_)).json()
        return {item["imageId"] for item in page["items"]}

    assert listed({"uploadedBy": "bob"}) == {ids[f"{n}.jpg"] for n in (8, 9, 10)} | {ids["11.png"]}
    assert listed({"metadata.camera": "x100", "uploadedBy": "alice"}) == {
        ids[f"{n}.jpg"] for n in (0, 2, 4, 6)
    }
    assert listed({"contentType": "image/png"}) == {ids["11.png"]}
    assert listed({"metadata.n": {"gte": 10}}) == {ids["10.jpg"], ids["11.png"]}
    assert len(listed({"status": "completed"})) == 12
    bad = get(api_url, tenant, "/api/v1/images", filter='{"colour": "red"}')
    assert bad.status_code == 400 and "colour" in bad.json()["detail"]
    tampered = get(api_url, tenant, "/api/v1/images", cursor="bm90IGEgY3Vyc29y")
    assert tampered.status_code == 400 and "cursor" in tampered.json()["detail"]


def test_the_bytes_and_thumbnails(stack: Stack, api_url: str, library: dict[str, Any]) -> None:
    tenant, ids = library["tenant"], library["ids"]
    content = get(api_url, tenant, f"/api/v1/images/{ids['11.png']}/content")
    assert content.status_code == 200
    assert content.headers["content-type"] == "image/png"
    assert content.content == synthetic.photo_bytes(80_011, 320, 240, "PNG")
    etag = content.headers["etag"]
    again = httpx.get(
        f"{api_url}/api/v1/images/{ids['11.png']}/content",
        headers={**tenant.headers, "If-None-Match": etag},
        timeout=30,
    )
    assert again.status_code == 304 and not again.content

    thumb = get(api_url, tenant, f"/api/v1/images/{ids['0.jpg']}/thumbnail", size=128)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(thumb.content))
    assert picture.format == "JPEG" and max(picture.size) == 128
    kept = list((Path(stack.env["DEEPLENS_BLOB_ROOT"]) / tenant.tenant_id / "thumbs").rglob("*"))
    assert any(p.is_file() for p in kept), "made once and kept"
    odd = get(api_url, tenant, f"/api/v1/images/{ids['0.jpg']}/thumbnail", size=300)
    assert odd.status_code == 400 and "256" in odd.json()["detail"]


def test_a_filtered_search_ranks_as_the_unfiltered_one_restricted(
    api_url: str, library: dict[str, Any]
) -> None:
    tenant, ids = library["tenant"], library["ids"]
    query = synthetic.photo_bytes(80_003, 320, 240)

    def search(**form: str) -> list[dict[str, Any]]:
        response = httpx.post(
            f"{api_url}/api/v1/search",
            headers=tenant.headers,
            files={"file": ("q.jpg", query, "image/jpeg")},
            data=form,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return list(response.json()["results"])

    everything = search(topK="12")
    alices = [h["imageId"] for h in everything if h["uploadedBy"] == "alice"]
    filtered = search(topK="5", filter=json.dumps({"uploadedBy": "alice"}))
    assert [h["imageId"] for h in filtered] == alices[:5]
    assert all(h["thumbnailUrl"] and h["contentUrl"] for h in filtered)
    paged = search(topK="3", offset="2", filter=json.dumps({"uploadedBy": "alice"}))
    assert [h["imageId"] for h in paged] == alices[2:5]
    close = search(topK="12", scoreThreshold="0.99")
    assert [h["imageId"] for h in close] == [ids["3.jpg"]], "only itself is that similar"
    bad = httpx.post(
        f"{api_url}/api/v1/search",
        headers=tenant.headers,
        files={"file": ("q.jpg", query, "image/jpeg")},
        data={"filter": '{"width": {"gte": "wide"}}'},
        timeout=30,
    )
    assert bad.status_code == 400 and "width" in bad.json()["detail"]
    similar = get(
        api_url,
        tenant,
        f"/api/v1/images/{ids['3.jpg']}/similar",
        topK=4,
        filter=json.dumps({"uploadedBy": "bob"}),
    )
    assert similar.status_code == 200
    assert {h["uploadedBy"] for h in similar.json()["results"]} == {"bob"}


def test_a_deleted_image_is_gone_from_everywhere(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "deletes")
    other = create_tenant(api_url, admin_key, "deletes-other")
    data = [synthetic.photo_bytes(81_000 + n, 320, 240) for n in range(4)]
    ids = upload_all(api_url, tenant, data)
    assert_healed(stack, tenant, ids)
    doomed = ids[0]

    def search() -> list[str]:
        response = httpx.post(
            f"{api_url}/api/v1/search",
            headers=tenant.headers,
            files={"file": ("q.jpg", data[0], "image/jpeg")},
            timeout=30,
        )
        return [h["imageId"] for h in response.json()["results"]]

    assert search()[0] == doomed  # and now that answer is cached
    thumb = get(api_url, tenant, f"/api/v1/images/{doomed}/thumbnail")
    assert thumb.status_code == 200
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT blob_key FROM deeplens.images WHERE image_id = %s", (doomed,))
        blob = Path(stack.env["DEEPLENS_BLOB_ROOT"]) / row.fetchone()[0]  # type: ignore[index]
    assert blob.exists()

    foreign = httpx.delete(f"{api_url}/api/v1/images/{doomed}", headers=other.headers, timeout=30)
    assert foreign.status_code == 404
    gone = httpx.delete(f"{api_url}/api/v1/images/{doomed}", headers=tenant.headers, timeout=30)
    assert gone.status_code == 204
    again = httpx.delete(f"{api_url}/api/v1/images/{doomed}", headers=tenant.headers, timeout=30)
    assert again.status_code == 404

    assert doomed not in search(), "not in search, nor in its cached answer"
    listed = get(api_url, tenant, "/api/v1/images").json()["items"]
    assert doomed not in {i["imageId"] for i in listed}
    similar = get(api_url, tenant, f"/api/v1/images/{ids[1]}/similar", topK=10).json()
    assert doomed not in {h["imageId"] for h in similar["results"]}
    assert get(api_url, tenant, f"/api/v1/images/{doomed}/content").status_code == 404
    assert get(api_url, tenant, f"/api/v1/images/{doomed}/status").status_code == 404
    assert not blob.exists(), "its bytes are gone"
    assert not any(p.is_file() and doomed in str(p) for p in blob.parent.parent.rglob("*"))
    qdrant = clients.qdrant(stack.child_settings())
    assert vectors.count(qdrant, str(tenant.body["collection"])) == 3


@pytest.mark.timeout(600)
def test_an_image_deleted_while_it_is_processed_does_not_come_back(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "delete-racing")
    ids = upload_all(
        api_url, tenant, [synthetic.photo_bytes(82_000 + n, 320, 240) for n in range(40)]
    )
    for image_id in ids[::4]:  # while they wait for, or go through, their run
        response = httpx.delete(
            f"{api_url}/api/v1/images/{image_id}", headers=tenant.headers, timeout=30
        )
        assert response.status_code == 204
    kept = [i for n, i in enumerate(ids) if n % 4]
    assert_healed(stack, tenant, kept)  # and the index holds exactly the completed ones
    time.sleep(5)  # a run still under way would have put a point back by now
    qdrant = clients.qdrant(stack.child_settings())
    assert vectors.count(qdrant, str(tenant.body["collection"])) == len(kept)


@pytest.mark.timeout(900)
def test_paging_while_uploading_returns_each_image_once(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "paging")
    first = upload_all(
        api_url, tenant, [synthetic.photo_bytes(83_000 + n, 64, 48) for n in range(1000)]
    )
    more: list[str] = []
    uploader = threading.Thread(
        target=lambda: more.extend(
            upload_all(
                api_url, tenant, [synthetic.photo_bytes(84_000 + n, 64, 48) for n in range(100)], 2
            )
        )
    )
    uploader.start()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = get(api_url, tenant, "/api/v1/images", **params).json()
        seen += [item["imageId"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    uploader.join()
    assert len(seen) == len(set(seen)), "no image twice"
    assert set(first) <= set(seen), "none of those there from the start missing"
    assert set(seen) <= set(first) | set(more)
