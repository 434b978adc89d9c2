"""The search page (`/app/`) against the real stack in headless Chromium, every request to
another host aborted: sign in with a tenant key, upload five images and watch each reach
"completed" over the status socket, search by one of them, "more like this", delete one, and
review a duplicate group. A screenshot of each step goes into the test's tmp dir.

The duplicates sensor waits for a tenant to be quiet for a minute (and ticks every 30 s), too
long for this test: once the pair is indexed, the test runs the `duplicate_groups` asset's own
step, `deeplens.duplicates.update`, for the tenant, as the sensor's run would.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import psycopg
import pytest
from PIL import Image
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    FilePayload,
    Page,
    expect,
)

from deeplens import clients, duplicates
from deeplens_local import synthetic
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle, create_tenant
from tests.browser import Traffic
from tests.faults.harness import photos

PROCESSED = 60_000  # ms: an upload's run, from the sensor's tick to "completed"


def jpeg(name: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": "image/jpeg", "buffer": data}


def resized(data: bytes) -> bytes:
    """The same photo at 90% of its size: another file, a near duplicate."""
    image = Image.open(io.BytesIO(data))
    smaller = image.resize(
        (image.width * 9 // 10, image.height * 9 // 10), Image.Resampling.LANCZOS
    )
    out = io.BytesIO()
    smaller.save(out, format="JPEG", quality=88)
    return out.getvalue()


def upload(page: Page, files: list[FilePayload]) -> dict[str, str]:
    """Upload through the page and wait for every row to say "completed" (pushed by the status
    socket); the image id of each file name."""
    page.get_by_role("button", name="Upload", exact=True).first.click()
    rows = page.locator("#uploads li")
    expected = rows.count() + len(files)
    page.set_input_files("#upload-files", files)
    page.get_by_label("Uploaded by").last.fill("e2e")
    page.locator("#upload-form").get_by_role("button", name="Upload").click()
    expect(rows).to_have_count(expected)
    done = rows.filter(has=page.locator(".state-completed"))
    expect(done).to_have_count(expected, timeout=PROCESSED)
    ids = {}
    for file in files:
        row = rows.filter(has_text=file["name"]).last
        ids[file["name"]] = str(row.get_attribute("data-image-id"))
    return ids


def group_now(stack: Stack, tenant: TenantHandle) -> None:
    """What the `duplicate_groups` asset does for the tenant, without waiting for its sensor."""
    settings = stack.child_settings()
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        duplicates.update(
            conn,
            clients.qdrant(settings),
            tenant.tenant_id,
            tenant.body["model"],
            tenant.body["collection"],
        )


@pytest.mark.timeout(300)
def test_the_search_page_end_to_end(
    stack: Stack,
    api_url: str,
    admin_key: str,
    context: BrowserContext,
    traffic: Traffic,
    tmp_path: Path,
) -> None:
    tenant = create_tenant(api_url, admin_key, "page")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        # A refused request is logged by the browser ("Failed to load resource"); the page
        # shows those. Anything else (a CSP violation, an exception) is a fault.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", console)
    page.on("dialog", lambda dialog: dialog.accept())
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    shots: list[Path] = []

    def shot(name: str) -> None:
        shots.append(tmp_path / f"{len(shots) + 1:02d}-{name}.png")
        page.screenshot(path=shots[-1], full_page=True)

    # 1. Sign in: a wrong key is refused with the API's detail, the tenant's key is taken.
    page.goto(f"{api_url}/")
    expect(page).to_have_url(f"{api_url}/app/")
    page.get_by_label("Tenant API key").fill("dlk_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#error")).to_contain_text("key")
    page.get_by_label("Tenant API key").fill(tenant.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_have_text("Signed in.")
    assert page.evaluate("sessionStorage.getItem('deeplens.apiKey')") == tenant.api_key
    assert page.evaluate("localStorage.length") == 0
    shot("signed-in")

    # 2. Upload five images; each row reaches "completed", pushed by the status socket.
    data = photos(5, seed=41_000)
    files = [jpeg(f"photo-{n}.jpg", blob) for n, blob in enumerate(data)]
    ids = upload(page, files)
    assert len(set(ids.values())) == 5
    shot("uploaded")

    # 3. Search by one of them: it comes first, with its thumbnail from a blob: URL.
    page.get_by_role("button", name="Search", exact=True).first.click()
    page.set_input_files("#query-file", jpeg("query.jpg", data[2]))
    page.get_by_label("Uploaded by").first.fill("e2e")
    page.get_by_label("Content type").select_option("image/jpeg")
    page.locator("#search-form").get_by_role("button", name="Search").click()
    first = page.locator("#results li").first
    expect(first).to_have_attribute("data-image-id", ids["photo-2.jpg"])
    expect(first.locator("img")).to_have_attribute("src", re.compile(r"^blob:"))
    expect(page.locator("#results-note")).to_contain_text("Like query.jpg")
    expect(page.locator("#results li img")).to_have_count(5)
    shot("searched")

    # 4. More like this, on the second hit: the hits are the others, itself left out.
    second = page.locator("#results li").nth(1)
    liked = str(second.get_attribute("data-image-id"))
    second.get_by_role("button", name="More like this").click()
    expect(page.locator("#results-note")).to_contain_text("More like photo-")
    expect(page.locator(f'#results li[data-image-id="{liked}"]')).to_have_count(0)
    expect(page.locator("#results li")).to_have_count(4)
    expect(page.locator("#results li img")).to_have_count(4)  # every thumbnail, then the shot
    shot("more-like-this")

    # 5. Browse, delete one, and see it gone from the listing (reloaded from the API).
    page.get_by_role("button", name="Browse", exact=True).click()
    expect(page.locator("#library li")).to_have_count(5)
    doomed = ids["photo-4.jpg"]
    page.locator(f'#library li[data-image-id="{doomed}"]').get_by_role(
        "button", name="Delete"
    ).click()
    expect(page.get_by_role("status")).to_have_text("Deleted photo-4.jpg.")
    page.get_by_role("button", name="First page").click()
    expect(page.locator("#browse-note")).to_have_text("Page 1: 4 image(s).")
    expect(page.locator(f'#library li[data-image-id="{doomed}"]')).to_have_count(0)
    expect(page.locator("#library li img")).to_have_count(4)
    shot("deleted")

    # 6. A near duplicate pair: upload a photo and a slightly smaller copy, group, review.
    original = synthetic.photo_bytes(41_100, 320, 240)
    pair = upload(page, [jpeg("dup-a.jpg", original), jpeg("dup-b.jpg", resized(original))])
    group_now(stack, tenant)
    page.get_by_role("button", name="Duplicates", exact=True).click()
    page.get_by_role("button", name="Show groups").click()
    group = page.locator("#groups fieldset.group")
    expect(group).to_have_count(1)
    expect(group.locator("li")).to_have_count(2)
    assert set(group.locator("li").evaluate_all("els => els.map(e => e.dataset.imageId)")) == set(
        pair.values()
    )
    expect(group.locator("img")).to_have_count(2)
    shot("duplicate-group")
    kept = str(group.locator("li").first.get_attribute("data-image-id"))
    group.get_by_role("button", name="Keep the chosen one, delete the others").click()
    expect(page.locator("#groups")).to_contain_text("kept one, deleted 1")
    shot("duplicate-resolved")

    gone = (set(pair.values()) - {kept}).pop()
    with httpx.Client(base_url=api_url, headers=tenant.headers, timeout=30) as api:
        assert api.get(f"/api/v1/images/{gone}").status_code == 404
        assert api.get(f"/api/v1/images/{kept}").status_code == 200
        assert api.get(f"/api/v1/images/{doomed}").status_code == 404

    assert traffic.elsewhere == [], "the page asked another host"
    # Progress came over the status socket (no polling), and the key never went in a URL.
    assert len(sockets) == 7 and all("/hub/processing-status?imageId=" in u for u in sockets)
    assert not [u for u in traffic.local if u.endswith("/status")]
    assert not [u for u in traffic.local + sockets if tenant.api_key in u]
    assert problems == [], problems
    print("screenshots:", *shots, sep="\n  ")
