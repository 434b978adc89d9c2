"""Tenant administration over the admin API: `tenants`, `keys`, `retry-failed`, and `reindex`
(a run of the ingest job without a batch, launched through Dagster's GraphQL as a backfill from
the UI would: the API knows nothing of Dagster)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from deeplens_cli.client import ApiError, Client, reported
from deeplens_cli.profile import load

out = Console(highlight=False)
tenants_app = typer.Typer(help="Create, list, show and delete tenants (admin key).")
keys_app = typer.Typer(help="A tenant's API keys: create, list, revoke (admin key).")

WAITING = ("uploaded", "queued", "processing", "retrying")
RUN_ENDED = ("SUCCESS", "FAILURE", "CANCELED")
LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status stepStats { stepKey status } } }
}
"""

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]
TenantArg = Annotated[str, typer.Argument(help="The tenant's id.")]


def connect(ctx: typer.Context) -> Client:
    """A client for the profile chosen with `deeplens --profile`."""
    return Client(load(ctx.find_root().params.get("profile")))


MODEL_ASSETS = ("embeddings", "indexed_vectors", "serving_index")


def rebuild_assets(model: str) -> list[dict[str, list[str]]]:
    """The asset keys (GraphQL `AssetKeyInput`) a rebuild of one model of a tenant runs."""
    return [{"path": ["images"]}, *({"path": [model, name]} for name in MODEL_ASSETS)]


def rebuild_params(tenant_id: str, model: str) -> dict[str, Any]:
    """`launchRun` parameters of the ingest job for the tenant's partition with no batch: a
    rebuild of one model's index into a new collection, checked, then the alias swap."""
    return {
        "selector": {
            "repositoryLocationName": "deeplens",
            "repositoryName": "__repository__",
            "jobName": "ingest",
            "assetSelection": rebuild_assets(model),
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": tenant_id}]},
    }


def waiting(by_status: dict[str, int]) -> int:
    return sum(by_status.get(s, 0) for s in WAITING)


def status_counts(by_status: dict[str, int]) -> str:
    """`completed 40, failed 2, waiting 3`: what a person looks at first."""
    parts = [f"completed {by_status.get('completed', 0)}", f"failed {by_status.get('failed', 0)}"]
    if waiting(by_status):
        parts.append(f"waiting {waiting(by_status)}")
    return ", ".join(parts)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@tenants_app.command("create")
@reported
def tenants_create(
    ctx: typer.Context,
    tenant_id: TenantArg,
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant; its first API key is shown once."""
    with connect(ctx) as api:
        body = api.request(
            "POST", "/api/v1/admin/tenants", admin=True, json={"tenantId": tenant_id, "name": name}
        ).json()
    if as_json:
        return _print_json(body)
    out.print(f"tenant {body['tenantId']} created (collection {body['collection']})")
    out.print(f"API key (shown once, store it): {body['apiKey']} (key id {body['keyId']})")


@tenants_app.command("list")
@reported
def tenants_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every tenant with its health: images by status, points indexed, model, alias target."""
    with connect(ctx) as api:
        details = [
            api.tenant(t["tenantId"])
            for t in api.get("/api/v1/admin/tenants", admin=True)["tenants"]
        ]
    if as_json:
        return _print_json(details)
    table = Table("tenant", "name", "model", "images", "points", "alias → collection")
    for d in details:
        table.add_row(
            d["tenantId"],
            Text(d["name"]),
            d["model"],
            status_counts(d["imagesByStatus"]),
            _points(d),
            f"{d['collection']} → {d.get('aliasTarget') or '?'}",
        )
    out.print(table)


def _points(detail: dict[str, Any]) -> str:
    points, completed = detail.get("points"), detail["imagesByStatus"].get("completed", 0)
    if points is None:
        return "?"
    return f"{points}" if points == completed else f"[yellow]{points}[/yellow] (≠ {completed})"


@tenants_app.command("show")
@reported
def tenants_show(ctx: typer.Context, tenant_id: TenantArg, as_json: JsonOption = False) -> None:
    """One tenant: health, limits and usage."""
    with connect(ctx) as api:
        d = api.tenant(tenant_id)
    if as_json:
        return _print_json(d)
    table = Table(show_header=False, title=f"tenant {d['tenantId']}")
    table.add_row("name", Text(d["name"]))
    table.add_row("serving model", d["model"])
    table.add_row("alias → collection", f"{d['collection']} → {d.get('aliasTarget') or '?'}")
    table.add_row("points in the index", _points(d))
    for status, n in sorted(d["imagesByStatus"].items()):
        table.add_row(f"images {status}", str(n))
    table.add_row("usage", f"{d['usage']['images']} images, {d['usage']['bytes']} bytes")
    for limit, value in d["limits"].items():
        table.add_row(f"limit {limit}", "none" if value is None else str(value))
    table.add_row("API keys", str(d["keys"]))
    out.print(table)


@tenants_app.command("delete")
@reported
def tenants_delete(
    ctx: typer.Context,
    tenant_id: TenantArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask.")] = False,
) -> None:
    """Delete a tenant with its images, blobs and vectors."""
    if not yes:
        typer.confirm(f"Delete tenant {tenant_id} and all its images?", abort=True)
    with connect(ctx) as api:
        body = api.request("DELETE", f"/api/v1/admin/tenants/{tenant_id}", admin=True).json()
    dropped = ", ".join(body["collectionsDropped"]) or "none"
    out.print(f"tenant {tenant_id} deleted (collections dropped: {dropped})")


@keys_app.command("create")
@reported
def keys_create(
    ctx: typer.Context,
    tenant_id: TenantArg,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
    read_only: Annotated[bool, typer.Option(help="Search and read only.")] = False,
    as_json: JsonOption = False,
) -> None:
    """A new API key for the tenant (shown once)."""
    with connect(ctx) as api:
        body = api.request(
            "POST",
            f"/api/v1/admin/tenants/{tenant_id}/keys",
            admin=True,
            json={"label": label, "readOnly": read_only},
        ).json()
    if as_json:
        return _print_json(body)
    out.print(f"API key (shown once, store it): {body['apiKey']} (key id {body['keyId']})")


@keys_app.command("list")
@reported
def keys_list(ctx: typer.Context, tenant_id: TenantArg, as_json: JsonOption = False) -> None:
    """The tenant's keys, without their secrets."""
    with connect(ctx) as api:
        found = api.get(f"/api/v1/admin/tenants/{tenant_id}/keys", admin=True)["keys"]
    if as_json:
        return _print_json(found)
    table = Table("key id", "label", "read only", "created", "last used")
    for k in found:
        table.add_row(
            k["keyId"],
            Text(k["label"]),
            "yes" if k["readOnly"] else "no",
            _when(k["createdAt"]),
            _when(k["lastUsedAt"]) if k["lastUsedAt"] else "never",
        )
    out.print(table)


def _when(iso: str) -> str:
    """`2026-12-03 07:32:52`: an ISO 8601 UTC time to the second."""
    return iso[:19].replace("T", " ")


@keys_app.command("revoke")
@reported
def keys_revoke(
    ctx: typer.Context,
    tenant_id: TenantArg,
    key_id: Annotated[str, typer.Argument(help="The key's id (`deeplens keys list`).")],
) -> None:
    """Revoke a key: every API process refuses it within about a second."""
    with connect(ctx) as api:
        api.request("DELETE", f"/api/v1/admin/tenants/{tenant_id}/keys/{key_id}", admin=True)
    out.print(f"key {key_id} of {tenant_id} revoked")


TimeoutOption = Annotated[float, typer.Option(help="Seconds to follow before giving up.")]


@reported
def retry_failed(
    ctx: typer.Context,
    tenant_id: TenantArg,
    wait: Annotated[bool, typer.Option(help="Follow the images until they end.")] = True,
    timeout: TimeoutOption = 900,
) -> None:
    """Process every failed image of the tenant again, then follow them until they end."""
    with connect(ctx) as api:
        body = api.request(
            "POST", f"/api/v1/admin/tenants/{tenant_id}/retry-failed", admin=True
        ).json()
        out.print(f"{body['retried']} failed image(s) of {tenant_id} sent again")
        if not wait or not body["retried"]:
            return
        by_status = _follow_images(api, tenant_id, body["retried"], timeout)
    out.print(f"{tenant_id}: {status_counts(by_status)}")
    if waiting(by_status) or by_status.get("failed", 0):
        raise typer.Exit(1)


def _follow_images(api: Client, tenant_id: str, total: int, timeout: float) -> dict[str, int]:
    """Poll the tenant's images by status until none waits (the admin key can't read one
    tenant image's status, but the tenant's counts tell the same)."""
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out
    ) as progress:
        task = progress.add_task("processing", total=None)
        while True:
            by_status = dict(api.tenant(tenant_id)["imagesByStatus"])
            progress.update(task, description=f"processing: {status_counts(by_status)}")
            if not waiting(by_status) or time.monotonic() > deadline:
                return by_status
            time.sleep(1)


@reported
def reindex(
    ctx: typer.Context,
    tenant_id: TenantArg,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends.")] = True,
    timeout: TimeoutOption = 3600,
) -> None:
    """Rebuild the tenant's index into a new collection and swap its alias to it (a run of the
    ingest job for the tenant's partition, launched through Dagster)."""
    with connect(ctx) as api:
        before = api.tenant(tenant_id)
        out.print(f"alias {before['collection']} → {before.get('aliasTarget') or '?'} (before)")
        params = rebuild_params(tenant_id, str(before["model"]))
        answer = api.graphql(LAUNCH, {"params": params})["launchRun"]
        if answer["__typename"] != "LaunchRunSuccess":
            raise ApiError(f"Dagster did not launch the run: {answer}")
        run_id = str(answer["run"]["runId"])
        out.print(f"run {run_id}: {api.profile.ui_url}/runs/{run_id}")
        if not wait:
            return
        status = _follow_run(api, run_id, timeout)
        after = api.tenant(tenant_id)
    out.print(f"alias {after['collection']} → {after.get('aliasTarget') or '?'} (after)")
    out.print(
        f"run {status}; images: {status_counts(after['imagesByStatus'])}, points {_points(after)}"
    )
    if status != "SUCCESS":
        raise typer.Exit(1)


def _follow_run(api: Client, run_id: str, timeout: float) -> str:
    """The run's end status, showing its state and its steps until then."""
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out
    ) as progress:
        task = progress.add_task("launched", total=None)
        while time.monotonic() < deadline:
            run = api.graphql(RUN, {"runId": run_id})["runOrError"]
            steps = run.get("stepStats") or []
            done = sum(1 for s in steps if s["status"] == "SUCCESS")
            running = [s["stepKey"] for s in steps if s["status"] == "IN_PROGRESS"]
            text = f"{run['status']}: {done} step(s) done" + (f", {running[0]}" if running else "")
            progress.update(task, description=text)
            if run["status"] in RUN_ENDED:
                return str(run["status"])
            time.sleep(1)
    raise ApiError(f"run {run_id} did not end within {timeout:.0f}s (it goes on in Dagster)")
