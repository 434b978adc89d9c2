"""The local store's durability: bytes and directory entries are fsynced before `put` returns,
and a failed write leaves nothing behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from deeplens.blobs import LocalBlobStore


def test_put_syncs_the_file_and_every_new_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = LocalBlobStore(tmp_path / "blobs")
    key = store.put("acme", b"photo")
    path = store.path(key)
    assert path.read_bytes() == b"photo"
    assert any(".upload-" in s for s in synced), "the file's bytes are synced before the rename"
    assert str(path.parent) in synced, "the renamed entry is synced in its directory"
    assert str(path.parent.parent) in synced, "a new directory's entry is synced in its parent"


def test_a_full_disk_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        store.put("acme", b"photo")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "no partial or temporary file"


def test_a_key_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="escapes"):
        store.get("acme/../../secret")
