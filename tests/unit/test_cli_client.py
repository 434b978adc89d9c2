"""The client commands' pure pieces: profile resolution, file discovery, the upload summary,
Retry-After, and the commands' errors without a server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from deeplens_cli import images, profile
from deeplens_cli.client import retry_after
from deeplens_cli.images import KINDS, Outcome, discover, exit_code, summary, summary_rows
from deeplens_cli.main import app
from deeplens_cli.profile import ProfileError, resolve

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
