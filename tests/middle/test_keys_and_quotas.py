"""Keys, limits and usage against a real catalog: a tenant's keys identify it until revoked,
usage follows inserts and deletes (by triggers), an insert over the quota is refused and writes
nothing, and revocations and limit changes are announced to the API processes."""

from __future__ import annotations

import psycopg
import pytest

from deeplens import keys as secrets
from deeplens.blobs import BlobStore
from deeplens.catalog import images, keys, tenants
from deeplens.catalog.tenants import QUOTA_EXCEEDED, Limits
from deeplens.hub import TENANT_CHANNEL
from tests.middle import seed
from tests.middle.seed import TenantUnderTest


def test_a_key_identifies_its_tenant_with_the_limits_until_it_is_revoked(
    conn: psycopg.Connection, tenant: TenantUnderTest
) -> None:
    tenants.set_limits(conn, tenant.tenant_id, Limits(searches_per_second=7, max_images=9))
    secret = secrets.new_api_key()
    key = keys.create(conn, tenant.tenant_id, secrets.hash_key(secret), "reader", read_only=True)
    identity = keys.identify(conn, secrets.hash_key(secret))
    assert identity is not None
    assert identity.tenant.tenant_id == tenant.tenant_id
    assert (identity.key_id, identity.read_only) == (key.key_id, True)
    assert identity.limits == Limits(searches_per_second=7, max_images=9)
    assert [k.key_id for k in keys.list_for(conn, tenant.tenant_id)] == [key.key_id]

    keys.touch(conn, [key.key_id])
    assert keys.list_for(conn, tenant.tenant_id)[0].last_used_at is not None
    assert keys.revoke(conn, tenant.tenant_id, key.key_id)
    assert keys.identify(conn, secrets.hash_key(secret)) is None
    assert not keys.revoke(conn, tenant.tenant_id, key.key_id), "revoking twice finds nothing"


def test_usage_follows_inserts_and_deletes_and_the_quota_refuses_the_insert(
    conn: psycopg.Connection, blob_store: BlobStore, tenant: TenantUnderTest
) -> None:
    first = seed.upload(conn, blob_store, tenant.tenant_id, seed.photo(1))
    second = seed.upload(conn, blob_store, tenant.tenant_id, seed.photo(2))
    found = tenants.limits_and_usage(conn, tenant.tenant_id)
    assert found is not None
    assert found[1].images == 2
    assert found[1].bytes == first.file_size + second.file_size

    tenants.set_limits(conn, tenant.tenant_id, Limits(max_images=2))
    with pytest.raises(psycopg.Error) as refused:
        seed.upload(conn, blob_store, tenant.tenant_id, seed.photo(3), store_blob=False)
    assert refused.value.sqlstate == QUOTA_EXCEEDED
    assert "quota of 2 images" in str(refused.value)
    assert images.count_by_status(conn, tenant.tenant_id) == {"uploaded": 2}, "nothing written"

    images.finish_delete(conn, first.image_id)
    after = tenants.limits_and_usage(conn, tenant.tenant_id)
    assert after is not None and after[1].images == 1
    seed.upload(conn, blob_store, tenant.tenant_id, seed.photo(3), store_blob=False)


def test_revocations_and_limit_changes_are_announced(
    conn: psycopg.Connection, catalog_url: str, tenant: TenantUnderTest
) -> None:
    key = keys.create(conn, tenant.tenant_id, secrets.hash_key("dlk_x"), "x")
    with psycopg.connect(catalog_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {TENANT_CHANNEL}")
        keys.revoke(conn, tenant.tenant_id, key.key_id)
        tenants.set_limits(conn, tenant.tenant_id, Limits(uploads_per_second=1))
        heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert heard == [tenant.tenant_id, tenant.tenant_id]


def test_a_deleted_tenant_takes_its_keys_with_it(
    conn: psycopg.Connection, blob_store: BlobStore, tenant: TenantUnderTest
) -> None:
    seed.upload(conn, blob_store, tenant.tenant_id, seed.photo(4))
    keys.create(conn, tenant.tenant_id, secrets.hash_key("dlk_gone"), "gone")
    assert tenants.delete(conn, tenant.tenant_id)
    assert keys.identify(conn, secrets.hash_key("dlk_gone")) is None
