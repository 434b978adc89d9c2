"""The S3 store's own concerns: the settings that build it, key prefixes that keep systems
apart in one bucket, a tenant deleted a page at a time, and a store that can't be reached
surfacing as `OSError` (an infrastructure fault), never as bytes that are gone."""

from __future__ import annotations

import pytest

from deeplens import clients
from deeplens.blobs import S3BlobStore
from deeplens.settings import Settings
from deeplens_local.stack.wait import free_port


def _store(settings: Settings, prefix: str = "", page_size: int = 1000) -> S3BlobStore:
    return S3BlobStore(clients.s3_client(settings), str(settings.s3_bucket), prefix, page_size)


def _keys(settings: Settings) -> set[str]:
    listed = clients.s3_client(settings).list_objects_v2(Bucket=str(settings.s3_bucket))
    return {o["Key"] for o in listed.get("Contents", [])}


def test_the_settings_choose_the_bucket_and_prefix(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"s3_prefix": "/prod/"})
    store = clients.blob_store(settings)
    assert isinstance(store, S3BlobStore)
    assert store.location == f"s3://{settings.s3_bucket}/prod/"
    key = store.put("acme", b"photo")
    assert _keys(settings) == {f"prod/{key}"}
    secret = settings.secret("s3_secret_access_key")
    assert secret and secret not in repr(settings)


def test_one_credential_without_the_other_is_refused(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"s3_secret_access_key": None})
    with pytest.raises(RuntimeError, match="go together"):
        clients.blob_store(settings)


def test_prefixes_keep_systems_apart_in_one_bucket(s3_settings: Settings) -> None:
    one, two, bare = _store(s3_settings, "one"), _store(s3_settings, "two"), _store(s3_settings)
    keys = {store.put("acme", b"photo") for store in (one, two, bare)}
    assert len(keys) == 1
    one.delete_tenant("acme")
    assert _keys(s3_settings) == {f"two/{key}" for key in keys} | keys
    assert one.missing(keys) == keys and two.missing(keys) == set()


def test_a_tenant_of_many_pages_is_deleted_in_batches(s3_settings: Settings) -> None:
    batches: list[int] = []

    def count(params: dict[str, dict[str, list[object]]], **kwargs: object) -> None:
        batches.append(len(params["Delete"]["Objects"]))

    client = clients.s3_client(s3_settings)
    client.meta.events.register("provide-client-params.s3.DeleteObjects", count)
    store = S3BlobStore(client, str(s3_settings.s3_bucket), page_size=3)
    for n in range(10):
        store.put("acme", f"photo {n}".encode())
    other = store.put("other", b"photo")
    store.delete_tenant("acme")
    assert batches == [3, 3, 3, 1]
    assert _keys(s3_settings) == {other}


def test_a_put_is_stored_when_it_returns(s3_settings: Settings) -> None:
    """S3 acknowledges a PutObject once the object is durable: another client sees it."""
    key = _store(s3_settings).put("acme", b"photo")
    assert _store(s3_settings).get(key) == b"photo"


def test_a_missing_bucket_is_an_unavailable_store(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"s3_bucket": "no-such-bucket"})
    store = _store(settings)
    assert not store.available()
    with pytest.raises(OSError) as raised:
        store.put("acme", b"photo")
    assert not isinstance(raised.value, FileNotFoundError)
    assert "NoSuchBucket" in str(raised.value)


def test_a_server_that_is_down_is_an_unavailable_store(s3_settings: Settings) -> None:
    """Every operation raises an `OSError` that is not `FileNotFoundError`, within the client's
    timeout and retries, and the message names neither the endpoint nor a credential."""
    down = s3_settings.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}", "s3_timeout": 1.0}
    )
    store = S3BlobStore(clients.s3_client(down, attempts=1), str(down.s3_bucket))
    key = store.key_for("acme", "ab" * 32)
    assert not store.available()
    for operation in (
        lambda: store.put("acme", b"photo"),
        lambda: store.get(key),
        lambda: store.missing([key]),
        lambda: store.delete(key),
        lambda: store.delete_tenant("acme"),
    ):
        with pytest.raises(OSError) as raised:
            operation()
        assert not isinstance(raised.value, FileNotFoundError)
        message = str(raised.value)
        assert "EndpointConnectionError" in message
        assert "127.0.0.1" not in message and "deeplens-local" not in message
