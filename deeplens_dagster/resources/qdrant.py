from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr
from qdrant_client import QdrantClient


class QdrantResource(dg.ConfigurableResource):
    """A qdrant-client connection: a Qdrant server or cluster, or the embedded local server."""

    url: str = Field(description="Qdrant REST URL (DEEPLENS_QDRANT_URL).")
    api_key: str | None = Field(default=None, description="Qdrant API key, if required.")
    timeout: int = Field(default=60, description="Request timeout in seconds.")

    _client: QdrantClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = QdrantClient(url=self.url, api_key=self.api_key, timeout=self.timeout)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            raise RuntimeError("QdrantResource used outside of a run or sensor")
        return self._client
