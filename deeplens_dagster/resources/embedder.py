from __future__ import annotations

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

from deeplens.model.embedder import Embedder
from deeplens.model.registry import ModelSpec, get_model


class EmbedderResource(dg.ConfigurableResource):
    """The ONNX embedder shared with the search API; one session per model, built on first use."""

    max_batch: int = Field(default=32, description="Images per inference call.")
    threads: int = Field(default=0, description="Intra-op threads; 0 = the machine's cores.")

    _embedders: dict[str, Embedder] = PrivateAttr(default_factory=dict)

    def spec(self, model: str) -> ModelSpec:
        return get_model(model)

    def embedder(self, model: str) -> Embedder:
        if model not in self._embedders:
            self._embedders[model] = Embedder(
                get_model(model), max_batch_size=self.max_batch, threads=self.threads or None
            )
        return self._embedders[model]

    def embed(self, model: str, images: list[bytes]) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors of the images that decoded (in order) and the errors of those that did not."""
        result = self.embedder(model).embed_bytes(images)
        return result.vectors[result.ok], result.errors
