"""A tenant's images over the API (its key): `upload`, `search`, `similar`.

`upload` resumes by itself: the API answers the bytes it already holds with 200 and the image
they were uploaded as (`duplicateOf`), storing nothing, so running the same command again after
an interruption sends only what is missing and counts the rest as already there.
"""

from __future__ import annotations

import json
import mimetypes
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from deeplens_cli.admin import connect
from deeplens_cli.client import ApiError, Client, reported

out = Console(highlight=False)

# What the API accepts (it sniffs the bytes; the suffix only picks the files of a folder).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TERMINAL = ("completed", "failed")
# Outcomes of one file, in the order the summary lists them.
KINDS = ("uploaded", "already there", "failed", "not sent (interrupted)")


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """The files to upload, sorted and each once, and the paths that don't exist. A folder
    gives its images at any depth (by suffix, hidden ones left out); a file named is taken
    as it is."""
    found: set[Path] = set()
    missing: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.update(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.add(path)
        else:
            missing.append(path)
    return sorted(found), missing


@dataclass(frozen=True)
class Outcome:
    path: Path
    kind: str  # one of KINDS
    image_id: str | None = None
    error: str | None = None
    final: str | None = None  # the image's status at the end of --wait


def summary_rows(outcomes: Sequence[Outcome]) -> list[tuple[str, str]]:
    """Counts by outcome (and by final status after --wait), then each failure with its reason."""
    counts = Counter(o.kind for o in outcomes)
    rows = [(str(counts[kind]), kind) for kind in KINDS if counts[kind]]
    finals = Counter(o.final for o in outcomes if o.final)
    for status, n in sorted(finals.items()):
        rows.append((str(n), f"searchable: {status}" if status == "completed" else status))
    rows.extend(("✗", f"{o.path}: {o.error}") for o in outcomes if o.error)
    return rows


def summary(outcomes: Sequence[Outcome]) -> Table:
    table = Table("files", "", title="upload summary", title_justify="left")
    for count, what in summary_rows(outcomes):
        table.add_row(count, Text(what))  # paths and errors as they are, never as markup
    return table


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """130 when interrupted (run it again to resume), 1 when a file or an image failed."""
    if any(o.kind == KINDS[3] for o in outcomes):
        return 130
    if any(o.kind == "failed" or o.final not in (None, "completed") for o in outcomes):
        return 1
    return 0


class Uploader:
    """Sends files from a thread pool; `stop` makes the files not yet started return at once
    (Ctrl-C sets it, so that what is in flight still gets its answer)."""

    def __init__(self, api: Client, uploaded_by: str | None, metadata: str | None) -> None:
        self.api = api
        self.form = {
            k: v for k, v in {"uploadedBy": uploaded_by, "metadata": metadata}.items() if v
        }
        self.stop = threading.Event()

    def upload_one(self, path: Path) -> Outcome:
        if self.stop.is_set():
            return Outcome(path, KINDS[3])
        try:
            data = path.read_bytes()
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            response = self.api.request(
                "POST", "/api/v1/images", files={"file": (path.name, data, kind)}, data=self.form
            )
        except (OSError, ApiError, httpx.HTTPError) as exc:  # this file fails; the others go on
            return Outcome(path, "failed", error=str(exc) or type(exc).__name__)
        body = response.json()
        if response.status_code == 200:
            return Outcome(path, "already there", str(body.get("duplicateOf") or body["imageId"]))
        return Outcome(path, "uploaded", str(body["imageId"]))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    )


def _send(uploader: Uploader, files: Sequence[Path], concurrency: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with _progress() as progress, ThreadPoolExecutor(concurrency) as pool:
        task = progress.add_task("uploading", total=len(files))
        futures = [pool.submit(uploader.upload_one, f) for f in files]
        pending = list(futures)
        while pending:
            try:
                for future in as_completed(pending):
                    pending.remove(future)
                    outcomes.append(future.result())
                    progress.advance(task)
            except KeyboardInterrupt:
                uploader.stop.set()
                progress.update(task, description="interrupted: finishing what is in flight")
    return outcomes


def _wait(api: Client, outcomes: list[Outcome], timeout: float) -> list[Outcome]:
    """The outcomes with the final status of each image, polled until all have ended."""
    ids = {o.image_id for o in outcomes if o.image_id}
    final: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with _progress() as progress, ThreadPoolExecutor(4) as pool:
        task = progress.add_task("processing", total=len(ids))
        while len(final) < len(ids) and time.monotonic() < deadline:
            todo = sorted(ids - set(final))

            def status(image_id: str) -> tuple[str, dict[str, Any]]:
                return image_id, api.get(f"/api/v1/images/{image_id}/status")

            for image_id, view in pool.map(status, todo):
                if view["status"] in TERMINAL:
                    final[image_id] = view["status"]
                    if view["status"] == "failed":
                        final[image_id] = f"failed: {view.get('reason') or 'no reason given'}"
            progress.update(task, completed=len(final))
            if len(final) < len(ids):
                time.sleep(1)
    return [
        Outcome(o.path, o.kind, o.image_id, o.error, final.get(o.image_id or "", "not ended"))
        if o.image_id
        else o
        for o in outcomes
    ]


@reported
def upload(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Images, or folders to upload recursively.")],
    wait: Annotated[bool, typer.Option(help="Wait until every image is searchable.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Uploads at once.")] = 4,
    uploaded_by: Annotated[str | None, typer.Option(help="Recorded with each image.")] = None,
    metadata: Annotated[str | None, typer.Option(help="A JSON object kept with each.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 1800,
) -> None:
    """Upload images with the tenant's key (DEEPLENS_API_KEY). Run it again after an
    interruption: what the API already has is skipped."""
    files, missing = discover(paths)
    for path in missing:
        out.print(f"[red]no such file or folder:[/red] {escape(str(path))}")
    out.print(f"{len(files)} file(s) to upload")
    with connect(ctx) as api:
        outcomes = _send(Uploader(api, uploaded_by, metadata), files, concurrency)
        if wait and exit_code(outcomes) != 130:
            outcomes = _wait(api, outcomes, timeout)
    out.print(summary(outcomes))
    code = exit_code(outcomes)
    if code == 130:
        out.print("interrupted: run the same command again to upload the rest")
    raise typer.Exit(code or (1 if missing else 0))


TopK = Annotated[int, typer.Option("--top-k", "-k", min=1, max=100, help="How many hits.")]
Filter = Annotated[str | None, typer.Option("--filter", help='JSON, e.g. {"uploadedBy": "alice"}.')]
Threshold = Annotated[float | None, typer.Option(help="Leave out hits scoring below it.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]


def hits_table(body: dict[str, Any]) -> Table:
    table = Table(
        "#",
        "score",
        "image id",
        "file",
        "size",
        "uploaded by",
        caption=f"{body['model']} · {body['tookMs']:.0f} ms"
        + (" · cached" if body["cached"] else ""),
    )
    for rank, hit in enumerate(body["results"], 1):
        table.add_row(
            str(rank),
            f"{hit['score']:.4f}",
            hit["imageId"],
            Text(hit["fileName"]),
            f"{hit['width']}x{hit['height']}",
            Text(hit.get("uploadedBy") or ""),
        )
    return table


def _show(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(body, indent=2))
    else:
        out.print(hits_table(body))


@reported
def search(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The query image.")],
    top_k: TopK = 10,
    filter_: Filter = None,
    score_threshold: Threshold = None,
    as_json: AsJson = False,
) -> None:
    """The tenant's images most similar to IMAGE, best first."""
    form = {"topK": str(top_k), "filter": filter_, "scoreThreshold": score_threshold}
    with connect(ctx) as api:
        body = api.request(
            "POST",
            "/api/v1/search",
            files={"file": (image.name, image.read_bytes())},
            data={k: str(v) for k, v in form.items() if v is not None},
        ).json()
    _show(body, as_json)


@reported
def similar(
    ctx: typer.Context,
    image_id: Annotated[str, typer.Argument(help="A stored image's id.")],
    top_k: TopK = 10,
    filter_: Filter = None,
    score_threshold: Threshold = None,
    as_json: AsJson = False,
) -> None:
    """The tenant's images most similar to a stored one (left out), best first."""
    params = {"topK": top_k, "filter": filter_, "scoreThreshold": score_threshold}
    with connect(ctx) as api:
        body = api.get(
            f"/api/v1/images/{image_id}/similar",
            params={k: v for k, v in params.items() if v is not None},
        )
    _show(body, as_json)
