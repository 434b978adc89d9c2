from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

if TYPE_CHECKING:
    from qdrant_client import QdrantClient


class QdrantResource(dg.ConfigurableResource):
    """A qdrant-client connection: a Qdrant server or cluster, or the embedded local server.

    qdrant-client takes about half a second to import, which a run worker would otherwise spend
    before its first step. The client is built on first use, or ahead of it in a background
    thread by `connect_in_background`: the `embeddings` step calls it, so the import overlaps
    inference (which leaves the interpreter free) rather than the `images` step's database and
    file-system calls (which it would slow down by holding the interpreter's lock).
    """

    url: str = Field(description="Qdrant REST URL (DEEPLENS_QDRANT_URL).")
    api_key: str | None = Field(default=None, description="Qdrant API key, if required.")
    timeout: int = Field(default=60, description="Request timeout in seconds.")

    _client: Future[QdrantClient] | None = PrivateAttr(default=None)

    _active: bool = PrivateAttr(default=False)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._active = True

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._active = False
        if self._client is not None and self._client.exception() is None:
            self._client.result().close()
        self._client = None

    def connect_in_background(self) -> None:
        """Start building the client (importing qdrant-client) in a background thread."""
        self._start(background=True)

    @property
    def client(self) -> QdrantClient:
        if not self._active:
            raise RuntimeError("QdrantResource used outside of a run or sensor")
        return self._start(background=False).result()

    def _start(self, background: bool) -> Future[QdrantClient]:
        with self._lock:
            if self._client is None:
                future: Future[QdrantClient] = Future()
                self._client = future
                if background:
                    name = "deeplens-qdrant-connect"
                    threading.Thread(target=self._connect, args=(future,), name=name).start()
                else:
                    self._connect(future)
            return self._client

    def _connect(self, future: Future[QdrantClient]) -> None:
        try:
            from qdrant_client import QdrantClient

            client = QdrantClient(url=self.url, api_key=self.api_key, timeout=self.timeout)
        except BaseException as exc:  # raised by `client`, in the step that uses it
            future.set_exception(exc)
        else:
            future.set_result(client)
