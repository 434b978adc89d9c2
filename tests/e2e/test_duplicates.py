"""Duplicate groups on a set made for it: exact duplicates (the same pixels in other files),
near duplicates (resized, cropped, recompressed, brightened, mirrored copies), other shots of a
scene and unrelated photos. The exact tier is exact; the near tier's precision and recall at the
default threshold are at least 0.95; a deleted image leaves its groups."""

from __future__ import annotations

import io
import itertools
import time
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image, ImageEnhance

from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle, create_tenant
from tests.faults.harness import assert_healed, upload_all


def other_shot(photo: Image.Image) -> bytes:
    """The same scene, the camera moved by a third and the light changed: not a duplicate."""
    w, h = photo.size
    moved = photo.crop((int(0.35 * w), 0, w, h)).resize((w, h))
    lit = ImageEnhance.Color(ImageEnhance.Brightness(moved).enhance(0.8)).enhance(1.3)
    return synthetic.encode(lit)


def resaved_png(photo: Image.Image) -> tuple[bytes, bytes]:
    """The same pixels as two PNG files that differ byte for byte."""
    files = []
    for level in (1, 9):
        out = io.BytesIO()
        photo.save(out, format="PNG", compress_level=level)
        files.append(out.getvalue())
    return files[0], files[1]


def retagged_jpeg(photo: Image.Image) -> tuple[bytes, bytes]:
    """The same JPEG with and without a comment segment: other bytes, the same picture."""
    plain = synthetic.encode(photo)
    comment = b"re-tagged by the tests"
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return plain, plain[:2] + segment + plain[2:]


def groups(api_url: str, tenant: TenantHandle, tier: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {
            "tier": tier,
            "limit": 7,
            **({"cursor": cursor} if cursor else {}),
        }
        page = httpx.get(
            f"{api_url}/api/v1/duplicates", headers=tenant.headers, params=params, timeout=30
        ).json()
        found += page["groups"]
        cursor = page["nextCursor"]
        if cursor is None:
            return found


def ungrouped(stack: Stack, tenant_id: str) -> int:
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM deeplens.images WHERE tenant_id = %s AND grouped_at IS NULL",
            (tenant_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def pairs(sets: list[set[str]]) -> set[frozenset[str]]:
    return {frozenset(p) for s in sets for p in itertools.combinations(sorted(s), 2)}


@pytest.mark.timeout(900)
def test_duplicate_groups_are_found_exactly_and_nearly(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "dupes")
    seed = 90_000
    files: list[bytes] = []
    expected_exact: list[set[int]] = []
    expected_near: list[set[int]] = []

    def add(data: bytes) -> int:
        files.append(data)
        return len(files) - 1

    for n in range(40):  # an original and one near copy of it, eight of each kind
        photo = synthetic.photo(seed + n, 640, 480)
        name = synthetic.VARIANT_NAMES[n % len(synthetic.VARIANT_NAMES)]
        expected_near.append({add(synthetic.encode(photo)), add(synthetic.variants(photo)[name])})
    for n in range(10):  # another shot of a scene: groups with nothing
        photo = synthetic.photo(seed + 100 + n, 640, 480)
        add(synthetic.encode(photo))
        add(other_shot(photo))
    for n in range(10):  # exact: the same pixels, other bytes
        photo = synthetic.photo(seed + 200 + n, 640, 480)
        a, b = resaved_png(photo) if n % 2 else retagged_jpeg(photo)
        expected_exact.append({add(a), add(b)})
    for n in range(10):  # unrelated
        add(synthetic.photo_bytes(seed + 300 + n, 640, 480))

    ids = upload_all(api_url, tenant, files)
    assert_healed(stack, tenant, ids)
    deadline = time.monotonic() + 240
    while ungrouped(stack, tenant.tenant_id) and time.monotonic() < deadline:
        time.sleep(2)  # the duplicates sensor runs once the tenant is idle
    assert ungrouped(stack, tenant.tenant_id) == 0, "every image was looked at"
    deadline = time.monotonic() + 30  # the run writes the groups just after
    while len(groups(api_url, tenant, "exact")) < len(expected_exact):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    exact = [set(g["imageIds"]) for g in groups(api_url, tenant, "exact")]
    assert sorted(map(sorted, exact)) == sorted(sorted(ids[i] for i in g) for g in expected_exact)
    near = groups(api_url, tenant, "near")
    assert all(0.5 <= g["score"] <= 1.0 and g["tier"] == "near" for g in near)
    found = pairs([set(g["imageIds"]) for g in near])
    wanted = pairs([{ids[i] for i in g} for g in expected_near + expected_exact])
    precision = len(found & wanted) / max(1, len(found))
    recall = len(found & wanted) / len(wanted)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)

    doomed = ids[next(iter(expected_exact[0]))]
    assert (
        httpx.delete(
            f"{api_url}/api/v1/images/{doomed}", headers=tenant.headers, timeout=30
        ).status_code
        == 204
    )
    left = [set(g["imageIds"]) for g in groups(api_url, tenant, "exact")]
    assert all(doomed not in g for g in left) and len(left) == len(expected_exact) - 1
