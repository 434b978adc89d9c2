from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from deeplens.blobs import BlobStore


class BlobStoreResource(dg.ConfigurableResource):
    """Image bytes, content-addressed under a root directory (DEEPLENS_BLOB_ROOT)."""

    root: str = Field(description="Directory holding the image bytes.")

    @property
    def store(self) -> BlobStore:
        return BlobStore(Path(self.root))
