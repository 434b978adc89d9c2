"""`tenant_partitions_sensor`: the `tenants` partitions follow the catalog's tenants."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest
from qdrant_client import QdrantClient

from deeplens.catalog import tenants
from deeplens.settings import Settings
from deeplens_dagster.partitions import TENANTS
from deeplens_dagster.resources import CatalogResource
from deeplens_dagster.sensors.tenants import tenant_partitions_sensor
from tests.middle import seed
from tests.middle.seed import TenantUnderTest

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

Requests = dict[str, list[str]]


def tick(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    with dg.build_sensor_context(
        instance=instance, resources={"catalog_db": CatalogResource()}
    ) as context:
        result = tenant_partitions_sensor(context)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def requested(result: dg.SensorResult) -> Requests:
    """The partition keys added and deleted by the result's requests."""
    out: Requests = {"add": [], "delete": []}
    for request in result.dynamic_partitions_requests or []:
        assert request.partitions_def_name == TENANTS
        kind = "add" if isinstance(request, dg.AddDynamicPartitionsRequest) else "delete"
        out[kind].extend(request.partition_keys)
    return out


def apply(instance: dg.DagsterInstance, requests: Requests) -> None:
    """What the sensor daemon does with the requests."""
    instance.add_dynamic_partitions(TENANTS, requests["add"])
    for key in requests["delete"]:
        instance.delete_dynamic_partition(TENANTS, key)


def record(instance: dg.DagsterInstance, result: dg.SensorResult) -> list[tuple[str, str]]:
    """What the sensor daemon does with the result's asset events; returns (asset, partition)
    of each."""
    out = []
    for event in result.asset_events or []:
        assert isinstance(event, dg.AssetMaterialization)
        instance.report_runless_asset_event(event)
        out.append((event.asset_key.to_user_string(), str(event.partition)))
    return out


def catalog_tenants(conn: psycopg.Connection) -> list[str]:
    return [t.tenant_id for t in tenants.list_all(conn)]


def test_partitions_are_added_for_new_tenants_and_removed_for_deleted_ones(
    deeplens_env: Settings,
    conn: psycopg.Connection,
    qdrant_client: QdrantClient,
    tenant: TenantUnderTest,
) -> None:
    """First tick: a partition for every catalog tenant, and the partition of a tenant the
    catalog does not have is deleted. Once applied, a tick finds nothing to do; after a tenant
    is deleted from the catalog, the next tick deletes its partition and only that."""
    other = seed.new_tenant_id("other")
    seed.create_tenant(conn, qdrant_client, other)
    stale = seed.new_tenant_id("stale")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(TENANTS, [stale])

        first = tick(instance)

        assert isinstance(first, dg.SensorResult)
        assert first.run_requests in (None, [])
        wanted = catalog_tenants(conn)
        assert {tenant.tenant_id, other} <= set(wanted)
        assert requested(first) == {"add": wanted, "delete": [stale]}
        apply(instance, requested(first))
        assert sorted(instance.get_dynamic_partitions(TENANTS)) == wanted

        # Their partitions now exist: the empty tenants' are recorded as materialized, empty.
        created = tick(instance)
        assert isinstance(created, dg.SensorResult)
        assert requested(created) == {"add": [], "delete": []}
        recorded = record(instance, created)
        for tenant_id in (tenant.tenant_id, other):
            assert {a for a, p in recorded if p == tenant_id} == {
                "images",
                f"{seed.MODEL}/embeddings",
                f"{seed.MODEL}/indexed_vectors",
                f"{seed.MODEL}/serving_index",
            }

        settled = tick(instance)

        assert isinstance(settled, dg.SkipReason)
        assert f"{len(wanted)} tenant(s)" in (settled.skip_message or "")

        assert tenants.delete(conn, other)
        after_delete = tick(instance)

        assert isinstance(after_delete, dg.SensorResult)
        assert requested(after_delete) == {"add": [], "delete": [other]}
