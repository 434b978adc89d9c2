from __future__ import annotations

from deeplens import clients
from deeplens.blobs import BlobStore
from deeplens_dagster.resources.settings import SettingsResource


class BlobStoreResource(SettingsResource):
    """Image bytes, content-addressed under the blob root (``DEEPLENS_BLOB_ROOT``)."""

    @property
    def store(self) -> BlobStore:
        return clients.blob_store(self.settings)
