"""The model the API embeds query images with, loaded in `lifespan`.

A model that can't be loaded does not stop the API: the error is kept, `/readyz` reports it and
the routes that need the model answer 503 with it.
"""

from __future__ import annotations

import logging

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
