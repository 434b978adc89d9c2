"""What the read and write handlers need of a collection (`collection.Collection` is one): its
edge shard, and a few operations on it. Handlers depend on this, not on `Collection`, so the
two modules don't import each other."""

from __future__ import annotations

from typing import Any, Protocol

import qdrant_edge as qe


class Shard(Protocol):
    shard: qe.EdgeShard

    def apply(self, operations: list[qe.UpdateOperation]) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]: ...

    def vector_of(self, pid: int | str, using: str | None) -> Any: ...
