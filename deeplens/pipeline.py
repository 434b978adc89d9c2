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


def payload(image: Image) -> dict[str, object]:
    """What a point carries: what search filters on (`deeplens.filters`) and shows."""
    return {
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


def index(
    conn: psycopg.Connection,
    client: QdrantClient,
    alias: str,
    rows: list[Image],
    model: str,
    model_version: str,
    rebuild: bool,
    tenant_id: str,
    dim: int,
) -> IndexOutcome:
    """Upsert the batch's vectors under the tenant's alias, or rebuild the collection and swap.

    Images become ``completed`` here, and each gets its ``processing.completed`` event in the
    same transaction.
    """
    # Imported here, not at the top: qdrant-client takes half a second to import, and a run
    # worker imports this module before its first step (`embeddings` has it loaded meanwhile).
    from deeplens import vectors

    started = time.perf_counter()
    candidates = [r for r in rows if r.status != "failed" or rebuild]
    vecs = stored.load(conn, model, model_version, [r.image_id for r in candidates])
    ready = [r for r in candidates if r.image_id in vecs]
    outcome = IndexOutcome(collection=alias)
    lap = outcome.lap("load", started)
    outcome.missing_vectors = [r.image_id for r in candidates if r.image_id not in vecs]
    rebuild_started = datetime.now(UTC)
    target = physical_collection(tenant_id, model) if rebuild else alias
    if rebuild:
        vectors.create_collection(client, target, dim)
    swapped = False
    try:
        if ready:
            matrix = np.stack([vecs[r.image_id] for r in ready])
            vectors.upsert_batches(
                client, target, [r.image_id for r in ready], matrix, [payload(r) for r in ready]
            )
            # An image deleted while this run held it must not come back with its point.
            deleted = catalog.gone(conn, tenant_id, [r.image_id for r in ready])
            if deleted:
                vectors.delete_points(client, [target], deleted)
                ready = [r for r in ready if r.image_id not in set(deleted)]
        outcome.indexed = len(ready)
        lap = outcome.lap("upsert", lap)
        if rebuild:
            # Searches move to the new collection only once its index is built and it holds
            # every image the tenant has.
            vectors.wait_indexed(client, target)
            lap = outcome.lap("build_index", lap)
            points = vectors.count(client, target)
            if points != len(ready):
                raise RebuildMismatch(
                    f"{target} holds {points} points for {len(ready)} indexed images; "
                    f"the alias stays on the current collection"
                )
            old = vectors.swap_alias(client, alias, target)
            swapped = True
            if old is not None and old != target:
                # Kept for a rollback; the reconciler drops it after the grace period.
                run_records.retire(conn, tenant_id, alias, old, replaced_by=target)
            _catch_up(conn, client, target, tenant_id, model, model_version, rebuild_started)
            outcome.rebuilt_from = old
            outcome.collection = target
            lap = outcome.lap("swap", lap)
    except BaseException:
        if rebuild and not swapped:
            _drop_quietly(client, target)  # a half-built collection is never left behind
        raise
    with conn.transaction():
        done = catalog.mark_completed(
            conn, tenant_id, [r.image_id for r in ready if r.status != "completed"]
        )
        now = datetime.now(UTC)
        for image in done:
            event = events.ProcessingCompleted(
                tenant_id=tenant_id,
                correlation_id=image.correlation_id,
                data=events.ProcessingCompletedData(
                    image_id=image.image_id,
                    total_processing_time_ms=int(
                        ((image.indexed_at or now) - image.uploaded_at).total_seconds() * 1000
                    ),
                    searchable_after=image.indexed_at or now,
                    processing_steps=processing_steps(image, now),
                    model_name=model,
                    model_version=model_version,
                    collection=alias,
                ),
            )
            catalog.enqueue(conn, events.TOPIC_COMPLETED, tenant_id, event)
    outcome.completed = len(done)
    outcome.lap("complete", lap)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _drop_quietly(client: QdrantClient, collection: str) -> None:
    try:
        client.delete_collection(collection)
    except Exception as exc:  # the rebuild's own error is what the run reports
        log.warning("could not drop the half-built collection %s: %s", collection, exc)


def _catch_up(
    conn: psycopg.Connection,
    client: QdrantClient,
    target: str,
    tenant_id: str,
    model: str,
    model_version: str,
    since: datetime,
) -> None:
    """Images indexed into the old collection while the new one was being built."""
    from deeplens import vectors

    late = [
        r
        for r in catalog.for_tenant(conn, tenant_id, ("completed",))
        if r.indexed_at and r.indexed_at >= since
    ]
    vecs = stored.load(conn, model, model_version, [r.image_id for r in late])
    late = [r for r in late if r.image_id in vecs]
    if late:
        matrix = np.stack([vecs[r.image_id] for r in late])
        vectors.upsert(
            client, target, [r.image_id for r in late], matrix, [payload(r) for r in late]
        )
