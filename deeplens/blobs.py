"""Content-addressed storage of image bytes under a local root, one folder per tenant."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved = root.resolve()  # once: resolving walks every component (a syscall each)

    def key_for(self, tenant_id: str, digest: str) -> str:
        return f"{tenant_id}/{digest[:2]}/{digest}"

    def path(self, key: str) -> Path:
        path = Path(os.path.normpath(self._resolved / key))
        if self._resolved not in path.parents:
            raise ValueError(f"blob key {key!r} escapes the blob root")
        return path

    def put(self, tenant_id: str, data: bytes, digest: str | None = None) -> str:
        """Store ``data``; returns its key. Writing the same bytes twice is a no-op."""
        key = self.key_for(tenant_id, digest or sha256_hex(data))
        path = self.path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete_tenant(self, tenant_id: str) -> None:
        shutil.rmtree(self.root / tenant_id, ignore_errors=True)
