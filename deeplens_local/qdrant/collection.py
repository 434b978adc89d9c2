"""One physical collection: its ``EdgeShard``, its config, and the request dispatch.

Lives in the collection's worker process (see ``worker.py``). On disk a collection is a directory
holding ``meta.json`` (name, creation time, normalised config; written last, atomically, so a
directory without it is an unfinished creation) and ``shard/`` (the edge shard: segments + WAL).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from deeplens_local.qdrant import config as configs
from deeplens_local.qdrant import jsonio, reads, writes
from deeplens_local.qdrant.convert import schema_name
from deeplens_local.qdrant.errors import (
    BadInput,
    FormatError,
    QdrantError,
    error_body,
    from_edge,
    ok_body,
    point_not_found,
)

log = logging.getLogger(__name__)

META = "meta.json"
OPS: dict[str, Callable[..., Any]] = {
    "retrieve": reads.retrieve,
    "get_point": reads.get_point,
    "scroll": reads.scroll,
    "count": reads.count,
    "query": reads.query,
    "query_batch": reads.query_batch,
    "search": reads.search,
    "search_batch": reads.search_batch,
    "info": reads.info,
    **writes.OPS,
    "update_collection": lambda c, params, body: c.reconfigure(body),
}
WRITE_OPS = frozenset(writes.OPS) | {"update_collection"}


class Collection:
    def __init__(self, directory: Path, meta: dict[str, Any], shard: qe.EdgeShard) -> None:
        self.directory = directory
        self.meta = meta
        self.shard = shard
        self.operation_id = 0
        self.dirty = True  # optimizations may be pending (always true right after opening)

    @classmethod
    def create(cls, directory: Path, name: str, config: dict[str, Any]) -> Collection:
        shard = qe.EdgeShard.create(str(directory / "shard"), configs.edge_config(config))
        meta = {"name": name, "created_at": datetime.now(UTC).isoformat(), "config": config}
        jsonio.write_json(directory / META, meta)
        return cls(directory, meta, shard)

    @classmethod
    def open(cls, directory: Path) -> Collection:
        meta = json.loads((directory / META).read_text())
        shard = qe.EdgeShard.load(str(directory / "shard"), configs.edge_config(meta["config"]))
        return cls(directory, meta, shard)

    def handle(self, op: str, params: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Run one request; answer Qdrant's status code and JSON envelope."""
        started = time.perf_counter()
        try:
            try:
                payload = jsonio.loads(body) if body else {}
            except ValueError as exc:
                raise FormatError(str(exc)) from exc
            if not isinstance(payload, dict):
                raise FormatError("expected a JSON object")
            return 200, ok_body(OPS[op](self, params, payload), started)
        except QdrantError as exc:
            return exc.status, error_body(exc, started)
        except KeyError as exc:
            return 400, error_body(FormatError(f"missing field {exc}"), started)
        except Exception as exc:
            error = from_edge(exc)
            if error.status == 500:
                log.exception("%s failed on %s", op, self.meta["name"])
            return error.status, error_body(error, started)

    def apply(self, operations: list[qe.UpdateOperation]) -> dict[str, Any]:
        for operation in operations:
            self.shard.update(operation)
            self.operation_id += 1
        self.dirty = True
        return {"operation_id": self.operation_id, "status": "completed"}

    def reconfigure(self, request: dict[str, Any]) -> bool:
        """``PATCH /collections/{name}``: new optimizer / HNSW settings, applied by reopening the
        shard with them (e.g. Qdrant's bulk-load recipe: ``indexing_threshold: 0`` while
        uploading, then back to the default, to build the index once)."""
        config = configs.update(self.meta["config"], request)
        meta = {**self.meta, "config": config}
        path = str(self.directory / "shard")
        self.shard.close()
        try:
            self.shard = qe.EdgeShard.load(path, configs.edge_config(config))
        except Exception:
            self.shard = qe.EdgeShard.load(path, configs.edge_config(self.meta["config"]))
            raise
        jsonio.write_json(self.directory / META, meta)
        self.meta = meta
        self.dirty = True
        return True

    def vector_of(self, pid: int | str, using: str | None) -> Any:
        records = self.shard.retrieve([pid], False, [using] if using else True)
        if not records:
            raise point_not_found(pid)
        vector = records[0].vector
        if isinstance(vector, dict):
            if using not in vector:
                raise BadInput(f"Not existing vector name error: {using or ''}")
            return vector[using]
        return vector

    def optimize(self) -> bool:
        started = time.perf_counter()
        changed = self.shard.optimize()
        self.dirty = False
        if changed:
            self.shard.flush()
            log.info("optimized %s in %.1fs", self.meta["name"], time.perf_counter() - started)
        return changed

    def unindexed(self, points: int, indexed: int) -> float:
        """Vectors not in an HNSW index yet, as a multiple of the indexing threshold."""
        config = self.meta["config"]
        threshold_kb = config["optimizer_config"]["indexing_threshold"]
        if not threshold_kb:
            return 0.0
        vectors = config["params"]["vectors"]
        sizes = [vectors["size"]] if "size" in vectors else [v["size"] for v in vectors.values()]
        unindexed_kb = (points * len(sizes) - indexed) * 4 * sum(sizes) / len(sizes) / 1024
        return float(unindexed_kb / threshold_kb)

    def pending(self) -> bool:
        """Written to since the last optimization, with at least the indexing threshold's worth
        of vectors not in an HNSW index (Qdrant reports such a collection yellow)."""
        stats = self.shard.info()
        return self.dirty and self.unindexed(stats.points_count, stats.indexed_vectors_count) >= 1

    def backlog(self) -> bool:
        """So much is unindexed (twice the threshold) that the optimizer should not wait for a
        pause in the writes any longer."""
        stats = self.shard.info()
        return self.dirty and self.unindexed(stats.points_count, stats.indexed_vectors_count) >= 2

    def info(self) -> dict[str, Any]:
        stats = self.shard.info()
        unindexed = self.unindexed(stats.points_count, stats.indexed_vectors_count)
        pending = self.dirty and unindexed >= 1
        return {
            "status": "yellow" if pending else "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": stats.indexed_vectors_count,
            "points_count": stats.points_count,
            "segments_count": stats.segments_count,
            "config": self.meta["config"],
            "payload_schema": {
                field: {"data_type": schema_name(index.data_type), "points": index.points}
                for field, index in stats.payload_schema.items()
            },
            "created_at": self.meta["created_at"],
        }

    def close(self) -> None:
        self.shard.flush()
        self.shard.close()
