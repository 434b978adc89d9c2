"""Tenant administration over the admin API: `tenants`, `keys`, `retry-failed`, `admin models`
(a tenant's models: list, add, rebuild, serve, retire), and `reindex` (a run of the ingest job
without a batch, launched through Dagster's GraphQL as a backfill from the UI would: the API
knows nothing of Dagster; `admin models add` and `admin models rebuild` launch the same run for
one model)."""

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
admin_app = typer.Typer(
    help="Administration of a tenant's models (admin key).", no_args_is_help=True
)
models_app = typer.Typer(
    help="A tenant's models: list, add and build, rebuild, serve, retire (admin key).",
    no_args_is_help=True,
)
admin_app.add_typer(models_app, name="models")

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
ModelArg = Annotated[str, typer.Argument(help="A registered model's name (efficientnet_lite2).")]


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


def backfill_params(tenant_id: str, model: str) -> dict[str, Any]:
    """`launchPartitionBackfill` parameters of the same rebuild as the UI sends them: an asset
    backfill of the model's assets for the tenant's partition, through the backfill daemon."""
    return {
        "assetSelection": rebuild_assets(model),
        "partitionNames": [tenant_id],
        "fromFailure": False,
        "tags": [],
    }


LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
BACKFILL = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status endTimestamp runs(limit: 5) { runId } }
  }
}
"""


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
        run_id = _launch(api, tenant_id, str(before["model"]))
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


def _launch(api: Client, tenant_id: str, model: str) -> str:
    """Launch the rebuild run of the tenant's `model` through Dagster; its run id."""
    answer = api.graphql(LAUNCH, {"params": rebuild_params(tenant_id, model)})["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise ApiError(f"Dagster did not launch the run: {answer}")
    run_id = str(answer["run"]["runId"])
    out.print(f"run {run_id}: {api.profile.ui_url}/runs/{run_id}")
    return run_id


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


# -- a tenant's models ------------------------------------------------------------------------

WaitOption = Annotated[bool, typer.Option(help="Follow the run until it ends.")]
STATE_STYLES = {"ready": "green", "pending": "yellow", "rejected": "red", "retired": "dim"}


def _models_path(tenant_id: str, model: str | None = None) -> str:
    path = f"/api/v1/admin/tenants/{tenant_id}/models"
    return path if model is None else f"{path}/{model}"


def _held(body: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The tenant's hold of `model` in a `TenantModels` answer, if any."""
    return next((m for m in body["models"] if m["model"] == model), None)


def _version(version: str | None) -> str:
    return version[:12] if version else "not built"


def _registered(held: dict[str, Any]) -> Text:
    """The registered file's version against the one the index was built with: `stale` when the
    file changed since (the tenant's index wants a rebuild)."""
    built, registered = held.get("modelVersion"), held.get("registeredVersion")
    if held["state"] == "retired":
        return Text("")
    if registered is None:
        return Text("no longer registered", style="yellow")
    if built is None:
        return Text(registered[:12])
    if built == registered:
        return Text("same")
    return Text(f"{registered[:12]} (stale)", style="yellow")


def _check(held: dict[str, Any]) -> str:
    check = held.get("lastCheck") or {}
    return str(check.get("description") or "none yet")


def models_table(body: dict[str, Any]) -> Table:
    table = Table(
        "model",
        "state",
        "serving",
        "version",
        "registered",
        "last check",
        title=f"models of {body['tenantId']} (serving: {body['servingModel']})",
    )
    for m in body["models"]:
        serving = "yes" if m["serving"] else "once verified" if m["serveWhenVerified"] else "no"
        table.add_row(
            Text(m["model"]),
            Text(m["state"], style=STATE_STYLES.get(m["state"], "")),
            serving,
            _version(m.get("modelVersion")),
            _registered(m),
            Text(_check(m)),
        )
    return table


@models_app.command("list")
@reported
def models_list(ctx: typer.Context, tenant_id: TenantArg, as_json: JsonOption = False) -> None:
    """The tenant's models: state, which serves search, versions and the last retrieval check."""
    with connect(ctx) as api:
        body = api.get(_models_path(tenant_id), admin=True)
    if as_json:
        return _print_json(body)
    out.print(models_table(body))


@models_app.command("add")
@reported
def models_add(
    ctx: typer.Context,
    tenant_id: TenantArg,
    model: ModelArg,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Serve search with it once its index passes the check."),
    ] = False,
    build: Annotated[
        bool,
        typer.Option(
            help="Launch the rebuild run that builds its index (else `models rebuild` later)."
        ),
    ] = True,
    wait: WaitOption = True,
    timeout: TimeoutOption = 3600,
) -> None:
    """Add a registered model to the tenant and build its index.

    The index is built beside the serving one (a rebuild run of the model's assets, launched
    through Dagster); its retrieval check decides whether the model becomes ready and, with
    --serve, serves search."""
    with connect(ctx) as api:
        body = api.request(
            "POST", _models_path(tenant_id), admin=True, json={"model": model, "serve": serve}
        ).json()
        held = _held(body, model) or {"state": "pending"}
        then = (
            "it serves search once its index passes the retrieval check"
            if serve
            else f"search stays on {body['servingModel']}"
        )
        out.print(f"model {model} added to {tenant_id} ({held['state']}): {then}")
        if not build:
            out.print(f"build its index: deeplens admin models rebuild {tenant_id} {model}")
            return
        _build(api, tenant_id, model, wait, timeout)


@models_app.command("rebuild")
@reported
def models_rebuild(
    ctx: typer.Context,
    tenant_id: TenantArg,
    model: ModelArg,
    wait: WaitOption = True,
    timeout: TimeoutOption = 3600,
) -> None:
    """Rebuild the tenant's index of one of its models (after a rejection or a model change).

    The new collection is swapped in once its retrieval check passes."""
    with connect(ctx) as api:
        held = _held(api.get(_models_path(tenant_id), admin=True), model)
        if held is None or held["state"] == "retired":
            raise ApiError(
                f"tenant {tenant_id} holds no model {model}: "
                f"add it with `deeplens admin models add {tenant_id} {model}`"
            )
        _build(api, tenant_id, model, wait, timeout)


def _build(api: Client, tenant_id: str, model: str, wait: bool, timeout: float) -> None:
    """Launch the rebuild run of the tenant's `model`; with `wait`, follow it and show the
    tenant's models after it. A run that fails, or whose check rejected the model, is an error."""
    run_id = _launch(api, tenant_id, model)
    if not wait:
        return
    status = _follow_run(api, run_id, timeout)
    body = api.get(_models_path(tenant_id), admin=True)
    out.print(models_table(body))
    held = _held(body, model) or {"state": "not held", "lastCheck": None}
    check = held.get("lastCheck") or {}
    if check.get("passed") is False and check.get("runId") == run_id:
        kept = " (it keeps its earlier index)" if held["state"] == "ready" else ""
        raise ApiError(
            f"run {run_id} {status}: the retrieval check rejected {model} for {tenant_id}{kept}: "
            f"{_check(held)}"
        )
    if status != "SUCCESS":
        raise ApiError(f"run {run_id} {status}: see {api.profile.ui_url}/runs/{run_id}")
    if held["state"] != "ready":
        raise ApiError(f"run {run_id} {status}, but {model} of {tenant_id} is {held['state']}")
    out.print(f"{model} is ready; {tenant_id} serves search with {body['servingModel']}")


@models_app.command("serve")
@reported
def models_serve(ctx: typer.Context, tenant_id: TenantArg, model: ModelArg) -> None:
    """Make one of the tenant's ready models serve search.

    Every API process takes it up within a second; the way back is the same command with the
    earlier model."""
    with connect(ctx) as api:
        before = api.get(_models_path(tenant_id), admin=True)["servingModel"]
        body = api.request("POST", f"{_models_path(tenant_id, model)}/serve", admin=True).json()
    out.print(f"{tenant_id} serves search with {body['servingModel']} (before: {before})")


@models_app.command("retire")
@reported
def models_retire(
    ctx: typer.Context,
    tenant_id: TenantArg,
    model: ModelArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask.")] = False,
) -> None:
    """Retire a model the tenant no longer serves with: its collections and stored vectors go."""
    if not yes:
        typer.confirm(f"Retire {model} of {tenant_id} and drop its index?", abort=True)
    with connect(ctx) as api:
        body = api.request("DELETE", _models_path(tenant_id, model), admin=True).json()
    out.print(f"model {model} of {tenant_id} retired; serving model: {body['servingModel']}")
