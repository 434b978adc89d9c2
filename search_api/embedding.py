"""The models the API embeds query images with: the default one loaded in `lifespan`, others
on first use (`QueryModels`).

A model that can't be loaded does not stop the API: the error is kept, `/readyz` reports it and
the routes that need the model answer 503 with it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from deeplens.model.embedder import Embedder
from deeplens.model.registry import ModelSpec, get_model
from search_api.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class QueryModel:
    def __init__(self, name: str) -> None:
        self.name = name
        self.spec: ModelSpec | None = None
        self.embedder: Embedder | None = None
        self.error: str | None = None

    def load(self, max_decode_bytes: int | None = None) -> QueryModel:
        """Load the model; a query image whose decode needs more than `max_decode_bytes` will
        be refused before any pixel is decoded."""
        try:
            spec = get_model(self.name)
            _ = spec.version  # hash the file now, not in the first request
            self.embedder = Embedder(
                spec,
                decode_threads=0,
                max_decode_bytes=max_decode_bytes,
                decode_budget="the API's query budget (DEEPLENS_QUERY_DECODE_BUDGET_MB)",
            )
            self.spec = spec
        except Exception as exc:  # reported by /readyz and by the routes that need the model
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("could not load model %r", self.name)
        return self

    def require_spec(self) -> ModelSpec:
        if self.spec is None:
            raise ServiceUnavailable(f"model {self.name!r} is not loaded: {self.error}")
        return self.spec

    def require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise ServiceUnavailable(f"model {self.name!r} is not loaded: {self.error}")
        return self.embedder

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()


class QueryModels:
    """The models the API embeds queries with: the default one (loaded at start, always held)
    and any other registered model a tenant searches with, loaded on first use; at most
    `capacity` are held, the least recently used other one is let go beyond that (an ONNX
    session of EfficientNet-Lite0 takes about 60 MB, Lite2 about 90 MB)."""

    def __init__(self, default: QueryModel, capacity: int, max_decode_bytes: int | None) -> None:
        self.default = default
        self._capacity = max(1, capacity)
        self._max_decode_bytes = max_decode_bytes
        self._held: OrderedDict[str, QueryModel] = OrderedDict({default.name: default})
        self._lock = threading.Lock()

    def get(self, name: str) -> QueryModel:
        with self._lock:
            found = self._held.get(name)
            if found is not None:
                self._held.move_to_end(name)
                return found
            # Loaded under the lock: a first use of a model is rare, and two loads of one model
            # at once would cost twice the memory.
            loaded = QueryModel(name).load(self._max_decode_bytes)
            if loaded.embedder is None:
                return loaded  # not held: the next request tries again
            self._held[name] = loaded
            while len(self._held) > self._capacity:
                oldest = next(n for n in self._held if n != self.default.name)
                # Not closed: a request may still be using it; it goes with its last reference.
                del self._held[oldest]
            return loaded

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def close(self) -> None:
        self.default.close()
