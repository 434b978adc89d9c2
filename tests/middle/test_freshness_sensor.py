"""`tenant_freshness`: a tenant whose oldest waiting upload is older than
DEEPLENS_FRESHNESS_MINUTES fails its `uploads_searchable_in_time` check, recorded once when its
state changes, and passes again once its uploads are searchable."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from deeplens_dagster.assets.freshness import CHECK
from deeplens_dagster.resources import CatalogResource
from deeplens_dagster.sensors.freshness import tenant_freshness
from tests.middle.runs import Tenancy

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"catalog_db": CatalogResource()}
    ) as context:
        result = tenant_freshness(context)
    assert isinstance(result, dg.SensorResult)
    return result


def mine(result: dg.SensorResult, tenant_id: str) -> list[dg.AssetCheckEvaluation]:
    found = [e for e in result.asset_events or [] if isinstance(e, dg.AssetCheckEvaluation)]
    return [e for e in found if e.partition == tenant_id]


def age(conn: psycopg.Connection, tenant_id: str, minutes: int) -> None:
    conn.execute(
        "UPDATE deeplens.images SET uploaded_at = now() - make_interval(mins => %s)"
        " WHERE tenant_id = %s",
        (minutes, tenant_id),
    )


def test_a_tenant_with_a_late_upload_fails_its_check_until_it_is_searchable(
    tenancy: Tenancy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPLENS_FRESHNESS_MINUTES", "5")
    [image_id] = tenancy.upload_photos(501)

    first = tick(tenancy.instance, None)
    [fresh] = mine(first, tenancy.tenant_id)
    assert (fresh.check_name, fresh.passed) == (CHECK, True), "seen for the first time"

    age(tenancy.conn, tenancy.tenant_id, 7)
    late = tick(tenancy.instance, first.cursor)
    [stale] = mine(late, tenancy.tenant_id)
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert "1 upload(s) waiting, the oldest for 7.0 min" in (stale.description or "")
    assert mine(tick(tenancy.instance, late.cursor), tenancy.tenant_id) == [], "unchanged"

    assert tenancy.run([image_id]).success
    healed = tick(tenancy.instance, late.cursor)
    [again] = mine(healed, tenancy.tenant_id)
    assert again.passed and again.description == "no upload waiting"
