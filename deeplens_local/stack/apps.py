"""Dagster's daemon and webserver, and the search API, as child processes of the stack."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx

from deeplens.metrics import MULTIPROCESS_DIR
from deeplens_local.stack.process import ManagedProcess
from deeplens_local.stack.servers import HOST
from deeplens_local.stack.wait import NotReady, wait_until

_BIN = Path(sys.executable).parent

LOCATIONS_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""


def start_daemon(env: dict[str, str], workspace: Path, logs: Path, cwd: Path) -> ManagedProcess:
    # Dagster's daemon with a 2-second backfill loop (see `deeplens_dagster.daemon`).
    argv = [sys.executable, "-m", "deeplens_dagster.daemon", "run", "-w", str(workspace)]
    return ManagedProcess("dagster-daemon", argv, logs / "dagster-daemon.log", env=env, cwd=cwd)


def start_webserver(
    env: dict[str, str], workspace: Path, port: int, logs: Path, cwd: Path
) -> tuple[ManagedProcess, str]:
    argv = [
        str(_BIN / "dagster-webserver"),
        "-h",
        HOST,
        "-p",
        str(port),
        "-w",
        str(workspace),
    ]
    proc = ManagedProcess("dagster-webserver", argv, logs / "dagster-webserver.log", env, cwd)
    return proc, f"http://{HOST}:{port}"


def start_api(
    env: dict[str, str], port: int, logs: Path, cwd: Path, workers: int = 1
) -> ManagedProcess:
    """uvicorn with `workers` processes sharing the port (each runs the app's lifespan).

    Their metrics go to files in a directory of their own, emptied first, so that a scrape of
    any worker sums them all (`deeplens.metrics`), unless ``PROMETHEUS_MULTIPROC_DIR`` names
    another. Only the API has it: the other processes' metrics would be summed in."""
    if not env.get(MULTIPROCESS_DIR):
        metrics_dir = cwd / "run" / "api-metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = {**env, MULTIPROCESS_DIR: str(metrics_dir)}
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "search_api.main:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--workers",
        str(workers),
    ]
    return ManagedProcess("search-api", argv, logs / "search-api.log", env=env, cwd=cwd)


def wait_for_api(url: str, proc: ManagedProcess, timeout: float = 120) -> None:
    def probe() -> None:
        httpx.get(url + "/readyz", timeout=5).raise_for_status()

    wait_until(probe, "the search API", timeout=timeout, interval=0.2, alive=proc.check_alive)


def code_locations(ui_url: str) -> list[dict[str, object]]:
    response = httpx.post(ui_url + "/graphql", json={"query": LOCATIONS_QUERY}, timeout=10)
    response.raise_for_status()
    workspace = response.json()["data"]["workspaceOrError"]
    return list(workspace.get("locationEntries", []))


def wait_for_code_location(ui_url: str, proc: ManagedProcess, timeout: float = 180) -> None:
    """Wait until the webserver answers and every code location has loaded, without errors."""

    def probe() -> None:
        entries = code_locations(ui_url)
        if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
            raise NotReady("code locations still loading")

    wait_until(
        probe, "the Dagster webserver", timeout=timeout, interval=0.5, alive=proc.check_alive
    )
    for entry in code_locations(ui_url):
        loaded = entry["locationOrLoadError"]
        if isinstance(loaded, dict) and loaded.get("__typename") == "PythonError":
            raise RuntimeError(f"code location {entry['name']} failed to load: {loaded['message']}")
