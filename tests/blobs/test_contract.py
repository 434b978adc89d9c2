"""The contract every blob store keeps, so that the API and the pipeline need not know which one
they have: content-addressed keys per tenant; the same bytes again are a no-op, unless the copy
is missing or partial (then it is repaired) or the write is forced; a key that holds nothing is
`FileNotFoundError` while the store is available (the bytes are gone, not the store)."""

from __future__ import annotations

import os

import pytest

from deeplens.blobs import BlobStore, sha256_hex


def test_bytes_are_stored_under_their_tenant_and_digest(store: BlobStore) -> None:
    data = os.urandom(2048)
    digest = sha256_hex(data)
    key = store.put("acme", data)
    assert key == f"acme/{digest[:2]}/{digest}"
    assert store.put("acme", data, digest) == key
    assert store.get(key) == data


def test_the_same_bytes_again_write_nothing_unless_forced(store: BlobStore) -> None:
    key = store.put("acme", b"photo")
    store.put_at(key, b"PHOTO")  # the same length under the same key: taken for the same bytes
    assert store.get(key) == b"photo"
    store.put_at(key, b"PHOTO", force=True)
    assert store.get(key) == b"PHOTO"


@pytest.mark.parametrize("damage", ["missing", "partial"])
def test_a_missing_or_partial_copy_is_repaired_by_the_same_bytes(
    store: BlobStore, damage: str
) -> None:
    data = os.urandom(4096)
    key = store.put("acme", data, sha256_hex(data))
    if damage == "missing":
        store.delete(key)
    else:
        store.put_at(key, data[:1000], force=True)
    assert store.put("acme", data, sha256_hex(data)) == key
    assert store.get(key) == data


def test_a_key_that_holds_nothing_is_missing_not_unavailable(store: BlobStore) -> None:
    kept = store.put("acme", b"kept")
    gone = store.key_for("acme", sha256_hex(b"never stored"))
    with pytest.raises(FileNotFoundError):
        store.get(gone)
    assert store.available()
    assert store.missing([kept, gone]) == {gone}
    assert store.missing([]) == set()


def test_delete_is_idempotent(store: BlobStore) -> None:
    key = store.put("acme", b"photo")
    store.delete(key)
    store.delete(key)
    assert store.missing([key]) == {key}


def test_delete_tenant_removes_its_keys_and_no_one_elses(store: BlobStore) -> None:
    mine = [store.put("acme", os.urandom(64)) for _ in range(5)]
    thumb = "acme/thumbs/64/photo.jpg"
    store.put_at(thumb, b"thumbnail")
    theirs = [store.put(tenant, b"photo") for tenant in ("acme-2", "acm", "other")]
    store.delete_tenant("acme")
    assert store.missing([*mine, thumb]) == {*mine, thumb}
    assert store.missing(theirs) == set()
    store.delete_tenant("acme")  # nothing left: a no-op
