from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import PrivateAttr

from deeplens import clients
from deeplens_dagster.resources.settings import SettingsResource

if TYPE_CHECKING:
    from qdrant_client import QdrantClient


class QdrantResource(SettingsResource):
    """A qdrant-client connection: a Qdrant server or cluster, or the embedded local server
    (``DEEPLENS_QDRANT_URL``, ``DEEPLENS_QDRANT_API_KEY``, ``DEEPLENS_QDRANT_TIMEOUT``).

    Speed exception (a background import, see the project's style notes): qdrant-client takes
    about half a second to import, which a run worker would otherwise spend before its first
    step; measured, run start to RUN_START went from 1.9 to 1.2 s. The public API has no lazy
    import, so the client is built on first use, or ahead of it in a background thread by
    `connect_in_background`. To remove it: build the client in `setup_for_execution`.

    The `embeddings` step calls it, so the import overlaps inference (which leaves the
    interpreter free) rather than the `images` step's database and file-system calls (which it
    would slow down by holding the interpreter's lock).
    """

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
            client = clients.qdrant(self.settings)
        except BaseException as exc:  # raised by `client`, in the step that uses it
            future.set_exception(exc)
        else:
            future.set_result(client)
