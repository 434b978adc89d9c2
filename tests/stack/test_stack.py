"""The local stack itself: what `deeplens up` starts answers over the real protocols."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from deeplens_local.stack.apps import code_locations
from deeplens_local.stack.stack import Stack, read_state


def test_readyz_reports_every_dependency_reachable(api_url: str) -> None:
    response = httpx.get(f"{api_url}/readyz", timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    for name in ("postgres", "kafka", "qdrant", "redis"):
        assert body["dependencies"][name]["reachable"] is True, body


def test_dagster_ui_lists_the_code_location_loaded(ui_url: str) -> None:
    entries = code_locations(ui_url)
    assert [e["name"] for e in entries] == ["deeplens"]
    assert entries[0]["loadStatus"] == "LOADED"
    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"  # type: ignore[index]


def test_dagster_storage_is_postgres(stack: Stack) -> None:
    with psycopg.connect(stack.env["DEEPLENS_DAGSTER_DATABASE_URL"]) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"runs", "event_logs", "dynamic_partitions"} <= tables


def test_catalog_schema_is_migrated(stack: Stack) -> None:
    with psycopg.connect(stack.env["DEEPLENS_DATABASE_URL"]) as conn:
        version = conn.execute("SELECT max(version) FROM deeplens.schema_version").fetchone()
    assert version is not None and version[0] >= 1


def test_state_file_names_every_child(stack: Stack) -> None:
    state = read_state(stack.home)
    assert state is not None and state["pid"] == os.getpid()
    assert {"dagster-daemon", "dagster-webserver", "search-api"} <= set(state["children"])


def _deeplens(home: Path, command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "deeplens_cli.main", command, "--home", str(home), *args]


def test_second_up_on_the_same_home_says_it_runs(stack: Stack) -> None:
    done = subprocess.run(_deeplens(stack.home, "up"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "already running" in done.stdout
    assert stack.endpoints["api"].url in done.stdout


@pytest.mark.stack  # starts a stack of its own
@pytest.mark.timeout(400)
def test_up_then_down_stops_every_process(tmp_path: Path) -> None:
    """`deeplens up` in the foreground; `deeplens down` from another process stops it all."""
    ports = [f"--{n}-port=0" for n in ("ui", "api", "postgres", "kafka", "qdrant", "redis")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPLENS_")}
    up = subprocess.Popen(
        _deeplens(tmp_path, "up", *ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert up.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    output = "".join(lines)
    assert "DeepLens is up" in output, output
    api = re.search(r"Search API\s+(\S+)", output)
    assert api is not None, output
    assert httpx.get(api.group(1) + "/readyz", timeout=30).status_code == 200
    children = list((read_state(tmp_path) or {}).get("children", {}).values())
    assert len(children) == 7, output

    down = subprocess.run(_deeplens(tmp_path, "down"), capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert up.wait(timeout=60) == 0
    rest = up.stdout.read()
    assert "Stopped" in rest
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.killpg(int(pid), 0)
    assert (tmp_path / "postgres" / "PG_VERSION").exists(), "data must stay for the next up"
    assert read_state(tmp_path) is None
    if up.poll() is None:  # pragma: no cover - only on failure
        up.send_signal(signal.SIGTERM)


def test_the_local_qdrant_requires_the_api_key_every_client_gets(stack: Stack) -> None:
    """The e2e tests' ingest and search reach a Qdrant that refuses requests without the key:
    DEEPLENS_QDRANT_API_KEY reaches the API, the code location and the run workers."""
    url = stack.env["DEEPLENS_QDRANT_URL"]
    key = stack.env["DEEPLENS_QDRANT_API_KEY"]
    assert httpx.get(f"{url}/collections", timeout=10).status_code == 401
    assert (
        httpx.get(f"{url}/collections", headers={"api-key": "wrong"}, timeout=10).status_code == 401
    )
    assert httpx.get(f"{url}/collections", headers={"api-key": key}, timeout=10).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
