"""The collections of the server: one worker per physical collection, plus the aliases.

Layout of the data directory::

    aliases.json                  alias -> collection
    collections/<name>/meta.json  config (the collection exists once this file does)
    collections/<name>/shard/     the edge shard
    .trash/                       collections being deleted

Name resolution and alias swaps happen on the event loop, so each is atomic for readers;
creating, deleting and re-aliasing are serialized by one lock.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import shutil
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from deeplens_local.qdrant.aliases import Aliases
from deeplens_local.qdrant.collection import META
from deeplens_local.qdrant.config import normalise
from deeplens_local.qdrant.errors import (
    AlreadyExists,
    BadInput,
    ValidationError,
    collection_not_found,
)
from deeplens_local.qdrant.workers import Worker

log = logging.getLogger(__name__)

# Seconds without writes before a collection's optimizer (HNSW indexing) runs, so that ingest
# batches are indexed soon after they land. A client waiting for green (a rebuild) gets it at
# once, and a writer that never pauses once its backlog is large (see `worker._loop`).
DEFAULT_OPTIMIZE_DELAY = 0.25
_FORBIDDEN = set('<>:"/\\|?*\0\x1f')


def _check_name(name: str) -> None:
    if not 1 <= len(name) <= 255 or _FORBIDDEN & set(name) or name in (".", ".."):
        raise ValidationError(
            f'collection name `{name}` must have 1 to 255 characters and none of <>:"/\\|?*'
        )


class Store:
    def __init__(self, data_dir: Path, optimize_delay: float = DEFAULT_OPTIMIZE_DELAY) -> None:
        self.root = data_dir
        self._dir = data_dir / "collections"
        self._trash = data_dir / ".trash"
        self._optimize_delay = optimize_delay
        self._workers: dict[str, Worker] = {}
        self._lock = asyncio.Lock()
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["deeplens_local.qdrant.worker"])
        self.aliases = Aliases(data_dir / "aliases.json")

    async def start(self) -> None:
        """Open every collection of the data directory (in parallel)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self._trash, ignore_errors=True)
        names = []
        for directory in sorted(self._dir.iterdir()):
            if (directory / META).exists():
                names.append(directory.name)
            else:  # a creation that never finished
                shutil.rmtree(directory, ignore_errors=True)
        workers = await asyncio.gather(*(self._start_worker(name, None) for name in names))
        self._workers = dict(zip(names, workers, strict=True))
        log.info("serving %d collection(s) from %s", len(names), self.root)

    async def close(self) -> None:
        workers, self._workers = list(self._workers.values()), {}
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))

    def _start_worker(
        self, name: str, create: dict[str, Any] | None
    ) -> Coroutine[Any, Any, Worker]:
        args = (self._ctx, name, self._dir / name, create, self._optimize_delay)
        return asyncio.to_thread(Worker.start, *args)

    def names(self) -> list[str]:
        return sorted(self._workers)

    def exists(self, name: str) -> bool:
        return (self.aliases.get(name) or name) in self._workers

    async def resolve(self, name: str) -> Worker:
        """The worker serving ``name`` (a collection or an alias), restarted if it died."""
        target = self.aliases.get(name) or name
        found = self._workers.get(target)
        if found is None:
            raise collection_not_found(target)
        if found.dead:
            async with self._lock:
                if self._workers.get(target) is found:
                    log.warning("restarting the worker of collection %s", target)
                    await asyncio.to_thread(found.stop)
                    self._workers[target] = await self._start_worker(target, None)
            return await self.resolve(name)
        return found

    async def create(self, name: str, request: Any) -> bool:
        _check_name(name)
        if not isinstance(request, dict):
            raise BadInput("expected a JSON object")
        config = normalise(request)
        async with self._lock:
            if name in self._workers:
                raise AlreadyExists(f"Collection `{name}` already exists!")
            if self.aliases.get(name) is not None:
                raise BadInput(
                    f"Can't create collection with name {name}. "
                    "Alias with the same name already exists"
                )
            directory = self._dir / name
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            try:
                started = await self._start_worker(name, {"name": name, "config": config})
            except Exception:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            self._workers[name] = started
            log.info("created collection %s", name)
        return True

    async def delete(self, name: str) -> bool:
        """Delete a collection (never through an alias, as in Qdrant) and its aliases."""
        _check_name(name)
        async with self._lock:
            self.aliases.remove_collection(name)
            found = self._workers.pop(name, None)
            if found is not None:
                await asyncio.to_thread(found.stop)
            directory = self._dir / name
            if directory.exists():
                self._trash.mkdir(exist_ok=True)
                doomed = self._trash / uuid.uuid4().hex
                directory.rename(doomed)
                await asyncio.to_thread(shutil.rmtree, doomed, True)
            if found is not None:
                log.info("deleted collection %s", name)
            return found is not None

    async def update_aliases(self, actions: Any) -> bool:
        async with self._lock:
            self.aliases.apply(actions, set(self._workers))
        return True
