from __future__ import annotations

from pydantic import PrivateAttr

from deeplens import clients
from deeplens.blobs import BlobStore
from deeplens_dagster.resources.settings import SettingsResource


class BlobStoreResource(SettingsResource):
    """Image bytes, content-addressed: under the blob root (``DEEPLENS_BLOB_ROOT``), or in an S3
    bucket (``DEEPLENS_BLOB_STORE=s3``, ``DEEPLENS_S3_*``). Built once per resource: an S3
    store's client takes a while to make and is safe to share between threads."""

    _store: BlobStore | None = PrivateAttr(default=None)

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            self._store = clients.blob_store(self.settings)
        return self._store
