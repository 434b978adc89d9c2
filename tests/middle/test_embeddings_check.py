"""The blocking asset check `embeddings_are_unit_vectors`: good vectors pass it; bad ones fail
it, keep the batch out of the index, and (through the run failure sensor) fail its images."""

from __future__ import annotations

import dagster as dg
import pytest

from deeplens import events
from deeplens_dagster.sensors.failures import ingest_failure_sensor
from tests.middle.fakes import FakeEmbedder
from tests.middle.runs import Tenancy, ingest

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

CHECK_STEP = "embeddings_embeddings_are_unit_vectors"


def run_with_check(tenancy: Tenancy, embedder: FakeEmbedder) -> dg.ExecuteInProcessResult:
    ids = tenancy.upload_photos(60, 61, 62)
    resources = {**tenancy.resources, "embedder": embedder}
    return ingest(
        tenancy.tenant_id,
        tenancy.instance,
        resources,
        ids,
        check=True,
        raise_on_error=False,
    )


def test_unit_vectors_pass_the_check_and_reach_the_index(tenancy: Tenancy) -> None:
    """The fake's vectors are unit-length and finite: the check passes with its counts, and
    `indexed_vectors` runs after it."""
    result = run_with_check(tenancy, FakeEmbedder())

    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    found = {k: v.value for k, v in evaluation.metadata.items()}
    assert found["checked"] == 3
    assert (found["non_finite"], found["off_unit_norm"], found["wrong_dimension"]) == (0, 0, 0)
    assert found["min_norm"] == pytest.approx(1.0, abs=1e-3)
    assert len(tenancy.points().ids) == 3


@pytest.mark.parametrize(
    ("embedder", "problem", "counter"),
    [
        (FakeEmbedder(nan=True), "with NaN/inf", "non_finite"),
        (FakeEmbedder(scale=1.5), "not unit-length", "off_unit_norm"),
    ],
    ids=["nan", "not-unit-length"],
)
def test_bad_vectors_fail_the_blocking_check_and_stay_out_of_the_index(
    tenancy: Tenancy, embedder: FakeEmbedder, problem: str, counter: str
) -> None:
    """NaN or non-unit vectors fail the check (severity ERROR, blocking): the run fails at the
    check's step, `indexed_vectors` never runs, nothing reaches Qdrant or becomes completed."""
    result = run_with_check(tenancy, embedder)

    assert not result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.blocking
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert problem in (evaluation.description or "")
    assert evaluation.metadata[counter].value == 3
    failed_steps = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed_steps == {CHECK_STEP}
    assert result.asset_materializations_for_node("indexed_vectors") == []
    assert tenancy.points().ids == set()
    assert {s for s, _ in tenancy.statuses().values()} == {"processing"}


def test_the_failure_sensor_fails_the_images_of_a_run_stopped_by_the_check(
    tenancy: Tenancy,
) -> None:
    """The run the check stopped, handed to `ingest_failure_sensor`: each image of its batch
    becomes `failed`, with a reason naming the run and the failed check step, and gets one
    `processing.failed` event (stage `run`)."""
    result = run_with_check(tenancy, FakeEmbedder(nan=True))
    assert not result.success
    [record] = tenancy.instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    failure = record.event_log_entry.dagster_event
    assert failure is not None

    with dg.build_run_status_sensor_context(
        sensor_name=ingest_failure_sensor.name,
        dagster_event=failure,
        dagster_instance=tenancy.instance,
        dagster_run=result.dagster_run,
        resources={"catalog_db": tenancy.resources["catalog_db"]},
    ).for_run_failure() as context:
        ingest_failure_sensor(context)

    status = tenancy.statuses()
    assert len(status) == 3
    for state, reason in status.values():
        assert state == "failed"
        assert reason is not None
        assert reason.startswith(f"run {result.run_id[:8]} failed:")
        assert CHECK_STEP in reason
    payloads = tenancy.outbox(events.TOPIC_FAILED)
    assert sorted(p["data"]["imageId"] for p in payloads) == sorted(str(i) for i in status)
    assert {p["data"]["stage"] for p in payloads} == {"run"}
