from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
from pydantic import Field, PrivateAttr

from deeplens.model.embedder import Embedder
from deeplens.model.registry import ModelSpec, get_model
from deeplens_dagster.resources.settings import SettingsResource


class EmbedderResource(SettingsResource):
    """The ONNX embedder shared with the search API; one session per model, built on first use.

    Decoding is bounded by ``DEEPLENS_DECODE_BUDGET_MB``: one huge image fails alone instead of
    taking the run worker, and its batch, down."""

    max_batch: int = Field(default=32, description="Images per inference call.")
    threads: int = Field(default=0, description="Intra-op threads; 0 = the machine's cores.")
    nice: int = Field(
        default=10,
        description=(
            "Scheduling niceness of the run worker once it loads a model (0 = unchanged). Bulk "
            "inference yields the CPU to the search API's uploads and queries on a shared "
            "machine, and still has every idle cycle."
        ),
    )

    _embedders: dict[str, Embedder] = PrivateAttr(default_factory=dict)

    def spec(self, model: str) -> ModelSpec:
        return get_model(model)

    def embedder(self, model: str) -> Embedder:
        if model not in self._embedders:
            lower_priority(self.nice)  # before the model's and the decode pool's threads start
            self._embedders[model] = Embedder(
                get_model(model),
                max_batch_size=self.max_batch,
                threads=self.threads or None,
                max_decode_bytes=self.settings.decode_budget_mb << 20,
            )
        return self._embedders[model]

    def embed_stream(
        self, model: str, chunks: Iterable[list[bytes]]
    ) -> Iterator[tuple[np.ndarray, dict[int, str]]]:
        """Per chunk: the vectors of the images that decoded (in order) and the errors of those
        that did not (by index in the chunk)."""
        for result in self.embedder(model).embed_stream(chunks):
            yield result.vectors[result.ok], result.errors


def lower_priority(nice: int) -> None:
    """Raise this thread's niceness to `nice` (threads it starts later inherit it).

    On Linux, niceness belongs to the thread: the embedder's inference and decode threads,
    started after this call, run at `nice`; threads already running keep theirs.

    Speed exception (a process-priority change; see the style notes):
    - Buys: the search API's uploads and queries go first while a run worker embeds on the same
      cores (bulk inference still gets every idle cycle). Its effect was not measured on its own:
      compare `make bench` with `nice=0` before relying on it.
    - Why not the public API: neither Dagster nor onnxruntime sets thread priorities.
    - Upstream: none; scheduling is the operating system's.
    - To remove: set the resource's `nice` to 0, or run workers on their own machines (pods).
    """
    if nice > 0 and hasattr(os, "setpriority"):
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
