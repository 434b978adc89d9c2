"""/docs and /redoc of the real stack's API in headless Chromium, with every request to another
host aborted: the pages render whole from the API alone, Swagger UI offers both keys, and a
call made from it carries the admin key to an admin route."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import BrowserContext, Page

from tests.browser import Traffic


def page_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_swagger_ui_shows_the_operations_and_both_keys_offline(
    context: BrowserContext, traffic: Traffic, api_url: str, admin_key: str, tmp_path: Path
) -> None:
    page = context.new_page()
    errors = page_errors(page)
    page.goto(f"{api_url}/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/api/v1/images", "/api/v1/search", "/api/v1/admin/tenants"} <= set(paths)

    page.get_by_role("button", name="Authorize").first.click()
    schemes = page.locator(".modal-ux .auth-container h4").all_inner_texts()
    assert sorted(s.split()[0] for s in schemes) == ["X-API-Key", "X-Admin-Key"], schemes
    page.screenshot(path=tmp_path / "docs-authorize.png")

    admin = page.locator(".auth-container", has_text="X-Admin-Key")
    admin.locator("input").fill(admin_key)
    admin.get_by_role("button", name="Apply credentials").click()
    admin.locator("button", has_text="Logout").wait_for()
    page.locator(".modal-ux .close-modal").click()

    operation = page.locator("#operations-admin-list_tenants_api_v1_admin_tenants_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    answered = operation.locator(".live-responses-table .response .response-col_status")
    answered.wait_for()
    assert answered.inner_text().strip() == "200"
    answered.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "docs-admin-call.png")

    assert traffic.elsewhere == [], "the page asked another host"
    assert f"{api_url}/docs/assets/swagger-ui-bundle.js" in traffic.local
    assert errors == []


def test_redoc_lists_the_operations_offline(
    context: BrowserContext, traffic: Traffic, api_url: str, tmp_path: Path
) -> None:
    page = context.new_page()
    errors = page_errors(page)
    page.goto(f"{api_url}/redoc")
    page.locator("[role=menuitem]").first.wait_for()
    items = page.locator("[role=menuitem]").all_inner_texts()
    for operation in ("Upload Image", "Search By Image", "List Tenants"):
        assert any(operation in item for item in items), items
    page.get_by_role("heading", name="Upload Image").first.wait_for()
    page.screenshot(path=tmp_path / "redoc.png")

    assert traffic.elsewhere == [], "the page asked another host"
    assert f"{api_url}/docs/assets/redoc.standalone.js" in traffic.local
    assert errors == []
