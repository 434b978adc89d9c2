"""The three ingest stages as plain functions; the Dagster assets are thin wrappers over them.

A batch names its images; an empty batch means the whole tenant (a backfill from the UI).
Every stage is idempotent: completed images are skipped, stored embeddings are reused, and
point ids are image ids, so re-running a batch changes nothing that was already done.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import psycopg

from deeplens import events
from deeplens.blobs import BlobStore
from deeplens.catalog import embeddings as stored
from deeplens.catalog import images as catalog
from deeplens.catalog import retries
from deeplens.catalog import runs as run_records
from deeplens.catalog.images import Image
from deeplens.naming import physical_collection
from deeplens.status import processing_steps

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

log = logging.getLogger(__name__)

RETRYABLE = ("uploaded", "queued", "processing", "retrying", "failed")


MISSING_BLOB = "image bytes missing from the blob store; upload the same file again to repair it"


class BlobStoreUnavailable(RuntimeError):
    """The blob store itself can't be read (an infrastructure fault: the run is retried)."""


class RebuildMismatch(RuntimeError):
    """A rebuilt collection does not hold the tenant's images: it is not swapped in."""


def select(conn: psycopg.Connection, tenant_id: str, image_ids: Sequence[str]) -> list[Image]:
    """The batch's images (not yet completed), or every image of the tenant for a rebuild."""
    if image_ids:
        rows = catalog.get_many(conn, tenant_id, [uuid.UUID(i) for i in image_ids])
        return [r for r in rows if r.status in RETRYABLE]
    return catalog.for_tenant(conn, tenant_id, (*RETRYABLE, "completed"))


def fail(
    conn: psycopg.Connection, tenant_id: str, failures: dict[uuid.UUID, str], stage: str
) -> int:
    """Mark images failed and enqueue one ``processing.failed`` event each, in one transaction."""
    if not failures:
        return 0
    with conn.transaction():
        changed = catalog.mark_failed(conn, tenant_id, failures)
        for image in changed:
            event = events.ProcessingFailed(
                tenant_id=tenant_id,
                correlation_id=image.correlation_id,
                data=events.ProcessingFailedData(
                    image_id=image.image_id, reason=image.failure_reason or "", stage=stage
                ),
            )
            catalog.enqueue(conn, events.TOPIC_FAILED, tenant_id, event)
    return len(changed)


def retry_later(
    conn: psycopg.Connection,
    tenant_id: str,
    image_ids: list[uuid.UUID],
    error: str,
    policy: retries.RetryPolicy,
    stage: str,
    run_id: str | None = None,
) -> retries.Retried:
    """An infrastructure fault stopped these images (in run `run_id`): they are retried later,
    or fail (with a ``processing.failed`` event) once the retry budget is spent."""
    with conn.transaction():
        outcome = retries.retry_later(conn, tenant_id, image_ids, error, policy, run_id)
        for image in outcome.gave_up:
            event = events.ProcessingFailed(
                tenant_id=tenant_id,
                correlation_id=image.correlation_id,
                data=events.ProcessingFailedData(
                    image_id=image.image_id, reason=image.failure_reason or error, stage=stage
                ),
            )
            catalog.enqueue(conn, events.TOPIC_FAILED, tenant_id, event)
    return outcome


@dataclass
class EmbedOutcome:
    embedded: int = 0
    reused: int = 0
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    seconds: float = 0.0
    decode_threads: int = 0


EmbedStream = Callable[[Iterable[list[bytes]]], Iterator[tuple[np.ndarray, dict[int, str]]]]


def embed(
    conn: psycopg.Connection,
    blobs: BlobStore,
    rows: list[Image],
    embed_stream: EmbedStream,
    model: str,
    model_version: str,
    chunk: int,
    dimension: int,
) -> EmbedOutcome:
    """Embed the images that have no stored vector for this model version yet.

    An image that can't be decoded, or whose vector is not a finite unit vector of the model's
    dimension, fails alone (`outcome.failed`); the rest go on.

    Three things overlap: reading the next chunk's bytes, decoding and inference (in
    `embed_stream`), and storing the previous chunk's vectors. A chunk's vectors are stored,
    and its images marked embedded, in one transaction.
    """
    outcome = EmbedOutcome()
    by_id = {r.image_id: r for r in rows}
    need = stored.missing(conn, model, model_version, list(by_id))
    outcome.reused = len(by_id) - len(need)
    started = time.perf_counter()
    fed: deque[list[uuid.UUID]] = deque()  # the ids of each chunk handed to the model

    def chunks() -> Iterator[list[bytes]]:
        for ids, data in _read_ahead(reader, blobs, by_id, need, chunk):
            readable: list[tuple[uuid.UUID, bytes]] = []
            for i, d in zip(ids, data, strict=True):
                if isinstance(d, str):
                    outcome.failed[i] = d
                else:
                    readable.append((i, d))
            fed.append([i for i, _ in readable])
            yield [d for _, d in readable]

    def write(ids: list[uuid.UUID], vecs: np.ndarray) -> None:
        with conn.transaction():
            stored.store(conn, model, model_version, ids, vecs)
            catalog.mark_embedded(conn, ids)

    writes: deque[Future[None]] = deque()
    with ThreadPoolExecutor(1, "deeplens-read") as reader, ThreadPoolExecutor(1) as writer:
        for vecs, errors in embed_stream(chunks()):
            ids = fed.popleft()
            ok_ids = [i for n, i in enumerate(ids) if n not in errors]
            for n, reason in errors.items():
                outcome.failed[ids[n]] = f"could not decode the image: {reason}"
            vecs, ok_ids = _valid(vecs, ok_ids, dimension, outcome.failed)
            if ok_ids:
                writes.append(writer.submit(write, ok_ids, vecs))
                outcome.embedded += len(ok_ids)
            while len(writes) > 1 or (writes and writes[0].done()):
                writes.popleft().result()  # raises a failed write here
        while writes:
            writes.popleft().result()
    outcome.seconds = time.perf_counter() - started
    return outcome


def _valid(
    vecs: np.ndarray, ids: list[uuid.UUID], dimension: int, failed: dict[uuid.UUID, str]
) -> tuple[np.ndarray, list[uuid.UUID]]:
    """The rows that are finite unit vectors of `dimension`; the others' images fail."""
    if vecs.ndim != 2 or vecs.shape[1] != dimension:
        for image_id in ids:
            failed[image_id] = f"the model gave a vector of shape {vecs.shape[1:]}, not {dimension}"
        return vecs[:0], []
    finite = np.isfinite(vecs).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], vecs, 0), axis=1)
    good = finite & (np.abs(norms - 1.0) <= 1e-3)
    for n in np.flatnonzero(~good):
        what = "NaN or infinite values" if not finite[n] else f"length {norms[n]:.4f}, not 1"
        failed[ids[n]] = f"the model gave an invalid vector ({what})"
    return vecs[good], [i for i, ok in zip(ids, good, strict=True) if ok]


def _read_ahead(
    pool: ThreadPoolExecutor,
    blobs: BlobStore,
    by_id: dict[uuid.UUID, Image],
    ids: list[uuid.UUID],
    size: int,
) -> Iterator[tuple[list[uuid.UUID], list[bytes | str]]]:
    """The bytes of `ids`, `size` at a time; the next chunk is read while this one is used."""
    pending: deque[tuple[list[uuid.UUID], Future[list[bytes | str]]]] = deque()
    for offset in range(0, len(ids), size):
        part = ids[offset : offset + size]
        pending.append((part, pool.submit(lambda p: [_read(blobs, by_id[i]) for i in p], part)))
        if len(pending) > 1:
            first, future = pending.popleft()
            yield first, future.result()
    while pending:
        first, future = pending.popleft()
        yield first, future.result()


def _read(blobs: BlobStore, image: Image) -> bytes | str:
    """The image's bytes, or why they are missing (the image's own fault: a re-upload of the
    same bytes repairs it); raises `BlobStoreUnavailable` when the store itself fails."""
    try:
        return blobs.get(image.blob_key)
    except FileNotFoundError as exc:
        if not blobs.available():
            raise BlobStoreUnavailable(
                f"the blob store at {blobs.location} is unavailable"
            ) from exc
        return MISSING_BLOB
    except OSError as exc:
        raise BlobStoreUnavailable(f"cannot read {image.blob_key}: {exc}") from exc


def payload(image: Image, lineage: dict[str, str] | None = None) -> dict[str, object]:
    """What a point carries: what search filters on (`deeplens.filters`) and shows, and the
    lineage of its vector (run, model, version)."""
    body: dict[str, object] = {
        "tenantId": image.tenant_id,
        "imageId": str(image.image_id),
        "fileName": image.file_name,
        "contentType": image.content_type,
        "uploadedBy": image.uploaded_by,
        "uploadedAt": image.uploaded_at.isoformat(),
        "width": image.width,
        "height": image.height,
        "metadata": image.metadata,
    }
    if lineage:
        body["lineage"] = lineage
    return body


@dataclass(frozen=True)
class Target:
    """One model's index of one tenant, as a run writes it."""

    tenant_id: str
    model: str
    model_version: str
    alias: str
    run_id: str
    dim: int

    def lineage(self) -> dict[str, str]:
        return {"runId": self.run_id, "model": self.model, "modelVersion": self.model_version}


@dataclass
class IndexOutcome:
    collection: str
    indexed: int = 0
    completed: int = 0
    rebuilt_from: str | None = None
    seconds: float = 0.0
    missing_vectors: list[uuid.UUID] = field(default_factory=list)
    # Seconds per part (load, upsert, build_index, swap, complete): where a rebuild's time goes.
    timings: dict[str, float] = field(default_factory=dict)

    def lap(self, part: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[part] = round(now - since, 3)
        return now


def _ready(
    conn: psycopg.Connection, target: Target, rows: list[Image], rebuild: bool
) -> tuple[list[Image], dict[uuid.UUID, np.ndarray], list[uuid.UUID]]:
    """The rows with a stored vector of the target's model version, their vectors, and the
    ids of those without one."""
    candidates = [r for r in rows if r.status != "failed" or rebuild]
    vecs = stored.load(conn, target.model, target.model_version, [r.image_id for r in candidates])
    ready = [r for r in candidates if r.image_id in vecs]
    return ready, vecs, [r.image_id for r in candidates if r.image_id not in vecs]


def _write(
    conn: psycopg.Connection,
    client: QdrantClient,
    target: Target,
    collection: str,
    ready: list[Image],
    vecs: dict[uuid.UUID, np.ndarray],
) -> list[Image]:
    """Upsert the rows' points into `collection`; returns the rows still there (an image deleted
    while this run held it must not come back with its point)."""
    from deeplens import vectors

    if not ready:
        return ready
    matrix = np.stack([vecs[r.image_id] for r in ready])
    lineage = target.lineage()
    vectors.upsert_batches(
        client,
        collection,
        [r.image_id for r in ready],
        matrix,
        [payload(r, lineage) for r in ready],
    )
    deleted = set(catalog.gone(conn, target.tenant_id, [r.image_id for r in ready]))
    if deleted:
        vectors.delete_points(client, [collection], list(deleted))
    return [r for r in ready if r.image_id not in deleted]


def index_batch(
    conn: psycopg.Connection,
    client: QdrantClient,
    target: Target,
    rows: list[Image],
    complete: bool,
) -> IndexOutcome:
    """Upsert a sensor batch's vectors under the model's alias. For the serving model
    (`complete`) the images become ``completed`` here, each with its ``processing.completed``
    event in the same transaction."""
    # Imported here, not at the top: qdrant-client takes half a second to import, and a run
    # worker imports this module before its first step (`embeddings` has it loaded meanwhile).
    from deeplens import vectors

    started = time.perf_counter()
    ready, vecs, outcome_missing = _ready(conn, target, rows, rebuild=False)
    collection = vectors.alias_target(client, target.alias) or target.alias
    outcome = IndexOutcome(collection=collection, missing_vectors=outcome_missing)
    lap = outcome.lap("load", started)
    ready = _write(conn, client, target, target.alias, ready, vecs)
    outcome.indexed = len(ready)
    lap = outcome.lap("upsert", lap)
    outcome.completed = _indexed(conn, target, collection, ready, complete)
    outcome.lap("complete", lap)
    outcome.seconds = time.perf_counter() - started
    return outcome


def build(
    conn: psycopg.Connection,
    client: QdrantClient,
    target: Target,
    rows: list[Image],
) -> IndexOutcome:
    """Build a new physical collection of the tenant's images for the model (a rebuild),
    beside the live one. It is swapped in by `promote` once verified; a collection that does
    not hold every image is dropped here (`RebuildMismatch`)."""
    from deeplens import vectors

    started = time.perf_counter()
    ready, vecs, missing = _ready(conn, target, rows, rebuild=True)
    name = physical_collection(target.tenant_id, target.model)
    outcome = IndexOutcome(collection=name, missing_vectors=missing)
    lap = outcome.lap("load", started)
    vectors.create_collection(client, name, target.dim)
    try:
        ready = _write(conn, client, target, name, ready, vecs)
        outcome.indexed = len(ready)
        lap = outcome.lap("upsert", lap)
        # Searches move to the new collection only once its index is built and it holds every
        # image the tenant has.
        vectors.wait_indexed(client, name)
        lap = outcome.lap("build_index", lap)
        points = vectors.count(client, name)
        if points != len(ready):
            raise RebuildMismatch(
                f"{name} holds {points} points for {len(ready)} indexed images; "
                f"the alias stays on the current collection"
            )
    except BaseException:
        _drop_quietly(client, name)  # a half-built collection is never left behind
        raise
    outcome.seconds = time.perf_counter() - started
    return outcome


def promote(
    conn: psycopg.Connection,
    client: QdrantClient,
    target: Target,
    candidate: str,
    rows: list[Image],
    built_since: datetime,
    complete: bool,
) -> IndexOutcome:
    """Swap the model's alias onto the verified `candidate` in one atomic request, keep the
    collection it replaced for a rollback, and bring the candidate up to date with images
    indexed into the old one since `built_since`. For the serving model (`complete`) the
    images become ``completed``, each with its ``processing.completed`` event."""
    from deeplens import vectors

    started = time.perf_counter()
    outcome = IndexOutcome(collection=candidate)
    old = vectors.swap_alias(client, target.alias, candidate)
    if old is not None and old != candidate:
        # Kept for a rollback; the reconciler drops it after the grace period.
        run_records.retire(conn, target.tenant_id, target.alias, old, replaced_by=candidate)
    outcome.rebuilt_from = old
    late = [
        r
        for r in catalog.for_tenant(conn, target.tenant_id, ("completed",))
        if r.indexed_at and r.indexed_at >= built_since
    ]
    if late:
        late_ready, late_vecs, _ = _ready(conn, target, late, rebuild=True)
        _write(conn, client, target, candidate, late_ready, late_vecs)
    lap = outcome.lap("swap", started)
    have = stored.having(conn, target.model, target.model_version, [r.image_id for r in rows])
    ready = [r for r in rows if r.image_id in have]
    outcome.missing_vectors = [r.image_id for r in rows if r.image_id not in have]
    outcome.completed = _indexed(conn, target, candidate, ready, complete)
    outcome.indexed = len(ready)
    outcome.lap("complete", lap)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _indexed(
    conn: psycopg.Connection,
    target: Target,
    collection: str,
    ready: list[Image],
    complete: bool,
) -> int:
    """Record the rows' lineage (this run put their vectors in `collection`) and, for the
    serving model (`complete`), mark them `completed` with their events, in one transaction;
    returns how many became completed."""
    with conn.transaction():
        ids = [r.image_id for r in ready]
        stored.record_indexed(
            conn, target.model, target.model_version, ids, target.run_id, collection
        )
        return _complete(conn, target, collection, ready) if complete else 0


def _complete(conn: psycopg.Connection, target: Target, collection: str, ready: list[Image]) -> int:
    """Mark the rows not yet completed `completed` and enqueue their events (in the caller's
    transaction)."""
    done = catalog.mark_completed(
        conn, target.tenant_id, [r.image_id for r in ready if r.status != "completed"]
    )
    now = datetime.now(UTC)
    for image in done:
        event = events.ProcessingCompleted(
            tenant_id=target.tenant_id,
            correlation_id=image.correlation_id,
            data=events.ProcessingCompletedData(
                image_id=image.image_id,
                total_processing_time_ms=int(
                    ((image.indexed_at or now) - image.uploaded_at).total_seconds() * 1000
                ),
                searchable_after=image.indexed_at or now,
                processing_steps=processing_steps(image, now),
                model_name=target.model,
                model_version=target.model_version,
                collection=target.alias,
                physical_collection=collection,
                run_id=target.run_id,
            ),
        )
        catalog.enqueue(conn, events.TOPIC_COMPLETED, target.tenant_id, event)
    return len(done)


def _drop_quietly(client: QdrantClient, collection: str) -> None:
    try:
        client.delete_collection(collection)
    except Exception as exc:  # the rebuild's own error is what the run reports
        log.warning("could not drop the half-built collection %s: %s", collection, exc)
