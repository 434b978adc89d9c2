from __future__ import annotations

from collections.abc import Iterator

import pytest

from deeplens.model import Embedder


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The default model on 2 threads, as the pipeline runs it."""
    with Embedder(threads=2) as model:
        yield model
