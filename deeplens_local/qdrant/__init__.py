"""A local Qdrant: the subset of Qdrant's REST API that DeepLens uses, backed by ``qdrant-edge``.

It stands in for a Qdrant server when ``DEEPLENS_QDRANT_URL`` is unset, because an edge shard can
be opened by one process only, while Dagster run workers and the search API are separate
processes. Clients use an unmodified ``qdrant_client.QdrantClient(url=...)``.

Run it with ``python -m deeplens_local.qdrant --port 16333 --data-dir PATH``, or build the ASGI
app with :func:`create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deeplens_local.qdrant.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the worker processes (which import this package) never import FastAPI.
    if name == "create_app":
        from deeplens_local.qdrant.app import create_app

        return create_app
    raise AttributeError(name)
