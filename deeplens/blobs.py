"""Content-addressed storage of image bytes under a local root, one folder per tenant; writes
are durable (fsync) before they return."""

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

    def put(
        self, tenant_id: str, data: bytes, digest: str | None = None, force: bool = False
    ) -> str:
        """Store ``data`` durably and return its key.

        When this returns, the bytes and their directory entry are on disk (fsync), so a 202
        that follows survives a crash. The same bytes again are a no-op, unless the file there
        is missing or shorter (a partial copy), or `force` (a failed image uploaded again: its
        copy may be damaged): then it is written again, which is how a re-upload repairs it.
        Raises `OSError` (disk full, store unavailable) with nothing left behind.
        """
        key = self.key_for(tenant_id, digest or sha256_hex(data))
        self.put_at(key, data, force)
        return key

    def put_at(self, key: str, data: bytes, force: bool = False) -> None:
        """Store `data` under `key` as `put` does (derived files: thumbnails)."""
        path = self.path(key)
        try:
            if not force and path.stat().st_size == len(data):
                return
        except FileNotFoundError:
            pass
        _make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def available(self) -> bool:
        """Whether the store's root can be reached (a missing file is then really missing)."""
        return self._resolved.is_dir()

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_tenant(self, tenant_id: str) -> None:
        shutil.rmtree(self.root / tenant_id, ignore_errors=True)


def _make_dirs(folder: Path) -> None:
    """`mkdir -p`, each new directory's entry made durable in its parent."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    _fsync_dir(folder.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
