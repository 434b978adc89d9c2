"""The blob store's durability contract: bytes and directory entries are fsynced before `put`
returns; a missing or partial copy is rewritten by the same bytes; a failed write leaves
nothing behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from deeplens.blobs import BlobStore, sha256_hex


def test_put_syncs_the_file_and_every_new_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = BlobStore(tmp_path / "blobs")
    key = store.put("acme", b"photo")
    path = store.path(key)
    assert path.read_bytes() == b"photo"
    assert any(".upload-" in s for s in synced), "the file's bytes are synced before the rename"
    assert str(path.parent) in synced, "the renamed entry is synced in its directory"
    assert str(path.parent.parent) in synced, "a new directory's entry is synced in its parent"


def test_the_same_bytes_again_write_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    key = store.put("acme", b"photo")
    before = store.path(key).stat().st_mtime_ns
    assert store.put("acme", b"photo") == key
    assert store.path(key).stat().st_mtime_ns == before


@pytest.mark.parametrize("damage", ["missing", "partial"])
def test_a_missing_or_partial_copy_is_repaired_by_the_same_bytes(
    tmp_path: Path, damage: str
) -> None:
    store = BlobStore(tmp_path)
    data = os.urandom(4096)
    key = store.put("acme", data, sha256_hex(data))
    if damage == "missing":
        store.path(key).unlink()
    else:
        store.path(key).write_bytes(data[:1000])
    assert store.put("acme", data, sha256_hex(data)) == key
    assert store.get(key) == data


def test_a_full_disk_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        store.put("acme", b"photo")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "no partial or temporary file"
