"""The `deeplens` client commands against the real stack, run in-process with typer's runner:
tenants and keys, an upload interrupted and resumed without duplicates, search and similar, a
reindex that moves the alias, retry-failed, and status from another directory."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from deeplens_cli.images import Uploader
from deeplens_cli.main import app
from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import TenantHandle, create_tenant, unique_id
from tests.e2e.test_retry import blob_path, damage, failed_with
from tests.faults.harness import photos, upload_all

ENV_NAMES = ("DEEPLENS_API_URL", "DEEPLENS_UI_URL", "DEEPLENS_API_KEY", "DEEPLENS_ADMIN_KEY")

Cli = Callable[..., Result]


@pytest.fixture
def cli(api_url: str, ui_url: str, admin_key: str, tmp_path: Path) -> Cli:
    """Run `deeplens ARGS...` against the stack (api_key: the tenant's key, when one is used)."""

    def run(*args: str, api_key: str | None = None, code: int = 0) -> Result:
        env = {
            "DEEPLENS_API_URL": api_url,
            "DEEPLENS_UI_URL": ui_url,
            "DEEPLENS_ADMIN_KEY": admin_key,
            "DEEPLENS_API_KEY": api_key,
            "DEEPLENS_PROFILE_FILE": str(tmp_path / "no-profile.toml"),
            "COLUMNS": "200",
        }
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    return run


def tenant_detail(cli: Cli, tenant_id: str) -> dict[str, object]:
    return dict(json.loads(cli("tenants", "show", tenant_id, "--json").stdout))


def write_photos(folder: Path, count: int, seed: int) -> None:
    for n, data in enumerate(photos(count, seed)):
        path = folder / ("nested" if n % 2 else "") / f"photo-{n:03}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.mark.timeout(300)
def test_tenants_and_keys(cli: Cli) -> None:
    tenant_id = unique_id("cli-admin")
    created = json.loads(cli("tenants", "create", tenant_id, "--name", "CLI", "--json").stdout)
    assert created["apiKey"] and created["tenantId"] == tenant_id
    cli("tenants", "create", tenant_id, code=1)  # 409: said, not a traceback
    listed = cli("tenants", "list").stdout
    assert tenant_id in listed
    shown = cli("tenants", "show", tenant_id).stdout
    assert "points in the index" in shown and "serving model" in shown
    detail = tenant_detail(cli, tenant_id)
    assert detail["points"] == 0 and str(detail["aliasTarget"]).startswith(
        str(detail["collection"])
    )

    key = json.loads(cli("keys", "create", tenant_id, "--label", "ci", "--json").stdout)
    assert key["label"] == "ci" and key["apiKey"]
    assert key["keyId"] in cli("keys", "list", tenant_id).stdout
    cli("keys", "revoke", tenant_id, key["keyId"])
    cli("keys", "revoke", tenant_id, key["keyId"], code=1)
    cli("tenants", "delete", tenant_id, "--yes")
    cli("tenants", "show", tenant_id, code=1)


@pytest.mark.timeout(600)
def test_an_interrupted_upload_resumes_then_search_similar_and_reindex(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id = unique_id("cli-upload")
    key = json.loads(cli("tenants", "create", tenant_id, "--json").stdout)["apiKey"]
    folder = tmp_path / "photos"
    write_photos(folder, 12, 81_000)

    # The first run is interrupted after 5 files (one at a time, so exactly 5 are sent).
    original = Uploader.upload_one
    sent: list[str] = []

    def stop_after_five(self: Uploader, path: Path) -> object:
        outcome = original(self, path)
        sent.append(outcome.kind)
        if len(sent) == 5:
            self.stop.set()
        return outcome

    with monkeypatch.context() as patch:
        patch.setattr(Uploader, "upload_one", stop_after_five)
        first = cli("upload", str(folder), "--concurrency", "1", api_key=key, code=130)
    assert "run the same command again" in first.stdout
    assert sent[:5] == ["uploaded"] * 5

    again = cli("upload", str(folder), "--wait", api_key=key).stdout
    for count, what in ((5, "already there"), (7, "uploaded"), (12, "searchable: completed")):
        assert re.search(rf"│ {count}\s+│ {what}", again), again
    detail = tenant_detail(cli, tenant_id)
    assert detail["imagesByStatus"] == {"completed": 12}, detail
    assert detail["points"] == 12

    query = folder / "photo-000.jpg"
    found = json.loads(cli("search", str(query), "--json", "-k", "3", api_key=key).stdout)
    top = found["results"][0]
    assert top["fileName"] == "photo-000.jpg" and top["score"] > 0.99
    assert "photo-000.jpg" in cli("search", str(query), api_key=key).stdout
    similar = json.loads(cli("similar", top["imageId"], "--json", api_key=key).stdout)
    assert top["imageId"] not in {h["imageId"] for h in similar["results"]}
    assert len(similar["results"]) == 10

    before = str(detail["aliasTarget"])
    rebuilt = cli("reindex", tenant_id).stdout
    after = tenant_detail(cli, tenant_id)
    assert after["aliasTarget"] not in (None, before), "the reindex moved the alias"
    assert f"→ {before} (before)" in rebuilt and f"→ {after['aliasTarget']} (after)" in rebuilt
    assert after["points"] == 12 and after["imagesByStatus"] == {"completed": 12}
    cli("tenants", "delete", tenant_id, "--yes")


@pytest.mark.timeout(600)
def test_retry_failed_follows_the_images_until_they_end(
    stack: Stack, api_url: str, admin_key: str, cli: Cli
) -> None:
    tenant: TenantHandle = create_tenant(api_url, admin_key, "cli-retry")
    (image_id,) = upload_all(api_url, tenant, photos(1, 82_000))
    original = damage(stack, image_id)
    failed_with(stack, tenant, [image_id], "could not decode")
    blob_path(stack, image_id).write_bytes(original)  # the cause goes away
    done = cli("retry-failed", tenant.tenant_id).stdout
    assert "1 failed image(s)" in done and "completed 1, failed 0" in done, done
    assert "0 failed image(s)" in cli("retry-failed", tenant.tenant_id).stdout


@pytest.mark.timeout(120)
def test_status_from_any_directory_finds_the_running_stack(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env: dict[str, str | None] = dict.fromkeys(ENV_NAMES)
    env |= {"DEEPLENS_HOME": str(stack.home), "COLUMNS": "200"}
    env["DEEPLENS_PROFILE_FILE"] = str(tmp_path / "no-profile.toml")
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    for component in ("deeplens up", "search API", "postgres", "qdrant", "Dagster", "daemon"):
        assert component in result.stdout, result.stdout
    assert "api_url deeplens up" in result.stdout


@pytest.mark.timeout(600)
def test_admin_models_add_builds_checks_serves_and_goes_back(cli: Cli, tmp_path: Path) -> None:
    tenant_id = unique_id("cli-models")
    created = json.loads(cli("tenants", "create", tenant_id, "--json").stdout)
    key, first = created["apiKey"], created["model"]
    folder = tmp_path / "photos"
    write_photos(folder, 12, 82_000)
    cli("upload", str(folder), "--wait", api_key=key)

    added = cli("admin", "models", "add", tenant_id, "efficientnet_lite2", "--serve").stdout
    assert "/runs/" in added, added
    listed = json.loads(cli("admin", "models", "list", tenant_id, "--json").stdout)
    assert listed["servingModel"] == "efficientnet_lite2", listed
    assert "stale" not in cli("admin", "models", "list", tenant_id).stdout
    cli("admin", "models", "add", tenant_id, "efficientnet_lite2", code=1)  # 409, said

    cli("admin", "models", "serve", tenant_id, first)
    cli("admin", "models", "retire", tenant_id, "efficientnet_lite2", "--yes")
    final = json.loads(cli("admin", "models", "list", tenant_id, "--json").stdout)
    assert final["servingModel"] == first
    assert {m["model"]: m["state"] for m in final["models"]} == {
        first: "ready",
        "efficientnet_lite2": "retired",
    }
