"""The client commands' pure pieces: profile resolution, file discovery, the upload summary,
Retry-After, the commands' errors without a server, and `admin models` against a fake admin API
and Dagster GraphQL (an httpx mock transport)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from deeplens_cli import admin, images, profile
from deeplens_cli.admin import rebuild_params
from deeplens_cli.client import Client, retry_after
from deeplens_cli.images import KINDS, Outcome, discover, exit_code, summary, summary_rows
from deeplens_cli.main import app
from deeplens_cli.profile import Profile, ProfileError, resolve

PROFILES = {
    "default": {"api_url": "http://default:8000/", "admin_key": "adm-default"},
    "prod": {"api_url": "https://prod", "ui_url": "https://dagster.prod", "api_key": "k-prod"},
}
LOCAL = {"api_url": "http://127.0.0.1:18000", "ui_url": "http://127.0.0.1:13000", "admin_key": "L"}


def test_the_environment_wins_then_the_profile_then_the_local_stack_then_the_defaults() -> None:
    got = resolve("prod", {"DEEPLENS_API_KEY": "k-env"}, PROFILES, LOCAL)
    assert (got.api_url, got.ui_url, got.api_key, got.admin_key) == (
        "https://prod",
        "https://dagster.prod",
        "k-env",
        "L",
    )
    assert got.sources == {
        "api_url": "profile prod",
        "ui_url": "profile prod",
        "api_key": "env",
        "admin_key": "deeplens up",
    }
    bare = resolve(None, {}, {}, {})
    assert (bare.api_url, bare.ui_url, bare.api_key) == (
        "http://127.0.0.1:8000",
        "http://127.0.0.1:3000",
        None,
    )


def test_the_default_profile_applies_unasked_and_the_env_can_choose_one() -> None:
    assert resolve(None, {}, PROFILES, {}).api_url == "http://default:8000"
    assert resolve(None, {"DEEPLENS_PROFILE": "prod"}, PROFILES, {}).api_key == "k-prod"


def test_a_profile_asked_for_must_exist_and_hold_known_keys() -> None:
    with pytest.raises(ProfileError, match="no profile 'staging'"):
        resolve("staging", {}, PROFILES, {})
    with pytest.raises(ProfileError, match="unknown key"):
        resolve("x", {}, {"x": {"apiurl": "typo"}}, {})


def test_the_profile_file_follows_xdg_and_can_be_named(tmp_path: Path) -> None:
    assert profile.profile_file({"XDG_CONFIG_HOME": str(tmp_path)}) == (
        tmp_path / "deeplens" / "profile.toml"
    )
    named = tmp_path / "p.toml"
    named.write_text('[prod]\napi_url = "https://prod"\n')
    assert profile.read_profiles(named) == {"prod": {"api_url": "https://prod"}}
    assert profile.read_profiles(tmp_path / "absent.toml") == {}
    named.write_text("[prod\n")
    with pytest.raises(ProfileError):
        profile.read_profiles(named)


def test_folders_give_their_images_at_any_depth_each_once(tmp_path: Path) -> None:
    for name in ("a.jpg", "sub/b.PNG", "sub/deeper/c.webp", "notes.txt", ".hidden/d.jpg", "e.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    named = tmp_path / "notes.txt"
    files, missing = discover([tmp_path, tmp_path / "sub", named, tmp_path / "nope"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a.jpg",
        "e.jpg",
        "notes.txt",
        "sub/b.PNG",
        "sub/deeper/c.webp",
    ]
    assert missing == [tmp_path / "nope"]


def _text(table: object) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_the_summary_counts_each_outcome_and_names_each_failure() -> None:
    outcomes = [
        Outcome(Path("a.jpg"), "uploaded", "1", final="completed"),
        Outcome(Path("b.jpg"), "already there", "2", final="completed"),
        Outcome(Path("c.jpg"), "failed", error="415 not an image"),
    ]
    assert summary_rows(outcomes) == [
        ("1", "uploaded"),
        ("1", "already there"),
        ("1", "failed"),
        ("2", "searchable: completed"),
        ("✗", "c.jpg: 415 not an image"),
    ]
    assert "c.jpg: 415 not an image" in _text(summary(outcomes))
    assert exit_code(outcomes) == 1
    assert exit_code(outcomes[:2]) == 0
    assert exit_code([*outcomes, Outcome(Path("d.jpg"), KINDS[3])]) == 130
    assert exit_code([Outcome(Path("e.jpg"), "uploaded", "3", final="failed: undecodable")]) == 1


def test_retry_after_is_read_in_seconds_within_bounds() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value} if value else {})

    assert retry_after(answer("2")) == 2.0
    assert retry_after(answer(None)) == 1.0
    assert retry_after(answer("soon")) == 1.0
    assert retry_after(answer("0")) == 0.1
    assert retry_after(answer("3600")) == 60.0


def test_a_command_without_a_key_says_which_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "DEEPLENS_PROFILE_FILE": str(tmp_path / "none.toml"),
        "DEEPLENS_API_URL": "http://127.0.0.1:9",
        "DEEPLENS_UI_URL": "http://127.0.0.1:9",
        "DEEPLENS_ADMIN_KEY": "",
        "DEEPLENS_API_KEY": "",
        "DEEPLENS_HOME": str(tmp_path / "home"),
    }
    result = CliRunner().invoke(app, ["tenants", "list"], env=env)
    assert result.exit_code == 1
    assert "no admin key" in result.output
    result = CliRunner().invoke(app, ["--profile", "nope", "tenants", "list"], env=env)
    assert result.exit_code == 1 and "no profile 'nope'" in result.output
    result = CliRunner().invoke(app, ["similar", "x"], env={**env, "DEEPLENS_API_KEY": "k"})
    assert result.exit_code == 1 and "cannot reach" in result.output


def test_the_upload_module_sends_nothing_for_an_empty_folder(tmp_path: Path) -> None:
    assert images.discover([tmp_path]) == ([], [])


# -- `deeplens admin models` against a fake admin API and Dagster ------------------------------

V1, V2 = "a1" * 32, "b2" * 32


def _model(name: str, state: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": name,
        "collection": f"tenant_acme_{name}_vectors",
        "state": state,
        "serving": False,
        "serveWhenVerified": False,
        "modelVersion": None,
        "physicalCollection": None,
        "candidate": None,
        "lastCheck": None,
        "addedAt": "2026-01-02T03:04:05Z",
        "builtAt": None,
        "registeredVersion": V1,
        **fields,
    }


class FakeApi:
    """The admin model routes of one tenant, and Dagster's GraphQL: a launched run ends at once
    as `outcome` says, having built (or rejected) the model as the real run would."""

    def __init__(self) -> None:
        self.serving = "efficientnet_lite0"
        self.models = {
            self.serving: _model(
                self.serving, "ready", serving=True, modelVersion=V1, builtAt="2026-01-01T00:00Z"
            )
        }
        self.requests: list[tuple[str, str, Any]] = []
        self.launched: list[dict[str, Any]] = []
        self.outcome = "SUCCESS"

    def body(self) -> dict[str, Any]:
        return {
            "tenantId": "acme",
            "servingModel": self.serving,
            "models": list(self.models.values()),
            "rebuild": "launch a backfill of the assets {model}/embeddings ...",
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, payload))
        if path == "/graphql":
            return self.graphql(payload)
        assert request.headers["X-Admin-Key"] == "adm"
        if path == "/api/v1/admin/tenants/acme":  # what `reindex` reads
            tenant = {"model": self.serving, "collection": "tenant_acme_vectors"}
            return httpx.Response(200, json={**tenant, "imagesByStatus": {}, "points": 0})
        base = "/api/v1/admin/tenants/acme/models"
        name = path.removeprefix(base).strip("/").removesuffix("/serve")
        if (request.method, path) == ("GET", base):
            return httpx.Response(200, json=self.body())
        if (request.method, path) == ("POST", base):
            if payload["model"] in self.models:
                detail = f"tenant 'acme' already holds model {payload['model']!r}; rebuild it"
                return httpx.Response(409, json={"detail": detail})
            self.models[payload["model"]] = _model(
                payload["model"], "pending", serveWhenVerified=payload["serve"]
            )
            return httpx.Response(202, json=self.body())
        if request.method == "POST" and path.endswith("/serve"):
            if self.models.get(name, {}).get("state") != "ready":
                return httpx.Response(409, json={"detail": f"model {name!r} is pending"})
            self.models[self.serving]["serving"] = False
            self.serving, self.models[name]["serving"] = name, True
            return httpx.Response(200, json=self.body())
        if request.method == "DELETE":
            self.models[name]["state"] = "retired"
            return httpx.Response(200, json=self.body())
        return httpx.Response(404, json={"detail": "Not Found"})

    def graphql(self, payload: dict[str, Any]) -> httpx.Response:
        if "launchRun" in payload["query"]:
            params = payload["variables"]["params"]
            self.launched.append(params)
            self.build(params["selector"]["assetSelection"][-1]["path"][0])
            return httpx.Response(
                200,
                json={
                    "data": {
                        "launchRun": {"__typename": "LaunchRunSuccess", "run": {"runId": "r1"}}
                    }
                },
            )
        status = {"status": self.outcome, "stepStats": [{"stepKey": "images", "status": "SUCCESS"}]}
        return httpx.Response(200, json={"data": {"runOrError": status}})

    def build(self, name: str) -> None:
        held = self.models[name]
        if self.outcome == "SUCCESS":
            check = {"passed": True, "runId": "r1", "description": "passed: recall@1 0.984"}
            held.update(state="ready", modelVersion=V1, lastCheck=check)
            if held["serveWhenVerified"]:
                self.models[self.serving]["serving"] = False
                self.serving, held["serving"], held["serveWhenVerified"] = name, True, False
        else:
            description = "failed: recall@1 0.200 on 64 augmented queries against 0.984"
            check = {"passed": False, "runId": "r1", "description": description}
            held.update(state="rejected", lastCheck=check)


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()

    def connect(ctx: object) -> Client:
        api = Client(Profile("http://api.test", "http://ui.test", admin_key="adm"))
        api.http = httpx.Client(
            base_url="http://api.test", transport=httpx.MockTransport(fake.handle)
        )
        return api

    monkeypatch.setattr(admin, "connect", connect)
    monkeypatch.setattr(admin, "out", Console(width=200, highlight=False))
    return fake


def deeplens(*args: str) -> Any:
    return CliRunner().invoke(app, ["admin", "models", *args])


def said(result: Any) -> str:
    """The command's output on one line (stderr wraps at 80 columns)."""
    return " ".join(result.output.split())


def row(result: Any, model: str) -> str:
    [line] = [line for line in result.output.splitlines() if line.startswith(f"│ {model} ")]
    return str(line)


def test_models_list_shows_state_serving_short_versions_staleness_and_the_last_check(
    fake_api: FakeApi,
) -> None:
    check = {"passed": False, "runId": "r0", "description": "failed: recall@1 0.300"}
    fake_api.models["efficientnet_lite0"]["registeredVersion"] = V2
    fake_api.models["efficientnet_lite2"] = _model(
        "efficientnet_lite2", "rejected", lastCheck=check
    )
    result = deeplens("list", "acme")
    assert result.exit_code == 0, result.output
    lite0 = row(result, "efficientnet_lite0")
    assert "ready" in lite0 and "yes" in lite0 and V1[:12] in lite0 and V1[:13] not in lite0
    assert f"{V2[:12]} (stale)" in lite0
    lite2 = row(result, "efficientnet_lite2")
    assert "rejected" in lite2 and "not built" in lite2 and "failed: recall@1 0.300" in lite2
    assert "serving: efficientnet_lite0" in said(result)
    as_json = deeplens("list", "acme", "--json")
    assert json.loads(as_json.output) == fake_api.body()


def test_models_add_without_build_only_adds_and_says_how_to_build(fake_api: FakeApi) -> None:
    result = deeplens("add", "acme", "efficientnet_lite2", "--serve", "--no-build")
    assert result.exit_code == 0, result.output
    assert fake_api.requests == [
        (
            "POST",
            "/api/v1/admin/tenants/acme/models",
            {"model": "efficientnet_lite2", "serve": True},
        )
    ]
    assert fake_api.launched == []
    assert "efficientnet_lite2 added to acme (pending)" in said(result)
    assert "deeplens admin models rebuild acme efficientnet_lite2" in said(result)


def test_models_add_launches_the_models_rebuild_run_and_shows_the_models_after_it(
    fake_api: FakeApi,
) -> None:
    result = deeplens("add", "acme", "efficientnet_lite2", "--serve")
    assert result.exit_code == 0, result.output
    assert fake_api.launched == [rebuild_params("acme", "efficientnet_lite2")]
    assert "run r1: http://ui.test/runs/r1" in said(result)
    lite2 = row(result, "efficientnet_lite2")
    assert "ready" in lite2 and "yes" in lite2 and "passed: recall@1 0.984" in lite2
    assert "acme serves search with efficientnet_lite2" in said(result)
    # Without --wait the run is launched and left to Dagster.
    fake_api.launched.clear()
    result = deeplens("add", "acme", "other", "--no-wait")
    assert result.exit_code == 0, result.output
    assert len(fake_api.launched) == 1 and "models of acme" not in result.output


def test_a_model_the_retrieval_check_rejects_fails_the_command_with_the_checks_verdict(
    fake_api: FakeApi,
) -> None:
    fake_api.outcome = "FAILURE"
    result = deeplens("add", "acme", "efficientnet_lite2", "--serve")
    assert result.exit_code == 1, result.output
    assert "the retrieval check rejected efficientnet_lite2 for acme" in said(result)
    assert "failed: recall@1 0.200 on 64 augmented queries" in said(result)
    assert fake_api.serving == "efficientnet_lite0"
    # It can be built again; a model the tenant doesn't hold can't.
    fake_api.outcome = "SUCCESS"
    assert deeplens("rebuild", "acme", "efficientnet_lite2").exit_code == 0
    assert fake_api.launched[-1] == rebuild_params("acme", "efficientnet_lite2")
    result = deeplens("rebuild", "acme", "nope")
    assert result.exit_code == 1 and "holds no model nope" in said(result)
    assert len(fake_api.launched) == 2


def test_models_serve_switches_and_retire_drops_one(fake_api: FakeApi) -> None:
    fake_api.models["efficientnet_lite2"] = _model("efficientnet_lite2", "ready", modelVersion=V1)
    result = deeplens("serve", "acme", "efficientnet_lite2")
    assert result.exit_code == 0, result.output
    assert "acme serves search with efficientnet_lite2 (before: efficientnet_lite0)" in said(result)
    assert ("POST", "/api/v1/admin/tenants/acme/models/efficientnet_lite2/serve", None) in (
        fake_api.requests
    )
    result = deeplens("retire", "acme", "efficientnet_lite0", "--yes")
    assert result.exit_code == 0, result.output
    assert fake_api.requests[-1] == (
        "DELETE",
        "/api/v1/admin/tenants/acme/models/efficientnet_lite0",
        None,
    )
    assert "efficientnet_lite0 of acme retired" in said(result)
    assert fake_api.models["efficientnet_lite0"]["state"] == "retired"


def test_an_api_conflict_is_shown_with_its_detail_and_nothing_is_launched(
    fake_api: FakeApi,
) -> None:
    result = deeplens("add", "acme", "efficientnet_lite0")
    assert result.exit_code == 1
    assert "409 tenant 'acme' already holds model 'efficientnet_lite0'; rebuild it" in said(result)
    assert fake_api.launched == []
    result = deeplens("serve", "acme", "pending_one")
    assert result.exit_code == 1 and "409 model 'pending_one' is pending" in said(result)


def test_reindex_still_rebuilds_the_serving_model(fake_api: FakeApi) -> None:
    result = CliRunner().invoke(app, ["reindex", "acme"])
    assert result.exit_code == 0, result.output
    assert fake_api.launched == [rebuild_params("acme", "efficientnet_lite0")]
    assert "run r1: http://ui.test/runs/r1" in said(result)
