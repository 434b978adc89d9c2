"""`deeplens status`: each component's health, from any directory.

The API's `/readyz` (with the admin key, the details) speaks for PostgreSQL, Qdrant, Redis,
Kafka, the model and the outbox relay; Dagster's GraphQL for the webserver and its daemons. A
local `deeplens up` found by the profile also shows its process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from deeplens_cli.client import Client, reported
from deeplens_cli.profile import Profile, load, local_home, local_state

out = Console(highlight=False)

DAEMONS = """
{ version instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""
COLOURS = {"ready": "green", "ok": "green", "reachable": "green", "degraded": "yellow"}


def _mark(state: str) -> str:
    return f"[{COLOURS.get(state, 'red')}]{state}[/]"


def api_rows(client: Client) -> tuple[list[tuple[str, str, str]], bool]:
    """(component, state, detail) rows from /readyz, and whether the API can serve."""
    profile = client.profile
    headers = {"X-Admin-Key": profile.admin_key} if profile.admin_key else {}
    try:
        response = client.http.get("/readyz", headers=headers, timeout=10)
        body: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return [("search API", "unreachable", f"{profile.api_url}: {exc}")], False
    rows = [("search API", body["status"], profile.api_url)]
    for name, dep in body.get("dependencies", {}).items():
        state = dep.get("status") or ("reachable" if dep.get("reachable") else "unreachable")
        how = f"{dep['latencyMs']:.0f} ms" if "latencyMs" in dep else str(dep.get("error", ""))
        rows.append((f"  {name}", state, how))
    model = body.get("model", {})
    what = " ".join(str(model[k]) for k in ("name", "version") if k in model)
    rows.append(("  model", "ready" if model.get("loaded") else "unavailable", what))
    if "relay" in body:
        relay = body["relay"]
        state = "ready" if relay["running"] else "unavailable"
        rows.append(("  outbox relay", state, f"{relay['published']} event(s) published here"))
    return rows, body["status"] in ("ready", "degraded")


def dagster_rows(client: Client) -> tuple[list[tuple[str, str, str]], bool]:
    try:
        data = client.graphql(DAEMONS)
    except Exception as exc:  # unreachable, or not a Dagster webserver: say it, go on
        return [("Dagster", "unreachable", f"{client.profile.ui_url}: {exc}")], False
    rows = [("Dagster", "reachable", f"{client.profile.ui_url} (dagster {data['version']})")]
    healthy = True
    for daemon in data["instance"]["daemonHealth"]["allDaemonStatuses"]:
        if daemon["required"]:
            healthy = healthy and daemon["healthy"]
            state = "ready" if daemon["healthy"] else "unavailable"
            rows.append((f"  daemon {daemon['daemonType'].lower()}", state, ""))
    return rows, healthy


def local_rows(home: Path | None) -> list[tuple[str, str, str]]:
    state = local_state(home)
    if not state:
        return []
    return [("deeplens up", "ready", f"pid {state['pid']}, home {home.resolve() if home else ''}")]


@reported
def status(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="DEEPLENS_HOME", help="Home of a local `deeplens up`."),
    ] = None,
) -> None:
    """Show each component's health (exit status 1 when the API or Dagster can't serve)."""
    profile: Profile = load(ctx.find_root().params.get("profile"), home)
    table = Table("component", "state", "detail", title="DeepLens", title_justify="left")
    for row in local_rows(local_home(os.environ, home)):
        table.add_row(row[0], _mark(row[1]), Text(row[2]))
    with Client(profile, timeout=15) as client:
        api, api_ok = api_rows(client)
        dagster, dagster_ok = dagster_rows(client)
    for name, state, detail in api + dagster:
        table.add_row(name, _mark(state), Text(detail))
    out.print(table)
    sources = profile.sources or {}
    out.print(
        "settings from: " + ", ".join(f"{k} {v}" for k, v in sources.items()),
        style="dim",
    )
    if not (api_ok and dagster_ok):
        raise typer.Exit(1)
