"""The blocking asset check `vectors_are_valid` of the default model's embeddings, on the run's
stored embeddings: good vectors pass it; a bad one in the batch fails it and keeps the batch out
of the index, and a bad one elsewhere in the tenant does not hold later batches back."""

from __future__ import annotations

import uuid

import dagster as dg
import numpy as np
import pytest

from deeplens.catalog import embeddings as stored
from deeplens.model.registry import get_model
from tests.middle import seed
from tests.middle.runs import Tenancy, metadata, node

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

SPEC = get_model(seed.MODEL)
CHECK_STEP = f"{seed.MODEL}__embeddings_vectors_are_valid"


def plant(tenancy: Tenancy, vector: np.ndarray, seed_: int = 69) -> uuid.UUID:
    """An image of the tenant whose stored embedding is `vector`, whatever wrote it (an older
    release, a manual repair): the check reads the stored vectors, not the model."""
    image = tenancy.upload(seed.photo(seed_), "planted.jpg")
    stored.store(tenancy.conn, SPEC.name, SPEC.version, [image.image_id], vector[None, :])
    return image.image_id


def test_unit_vectors_pass_the_check_and_reach_the_index(tenancy: Tenancy) -> None:
    """The fake's vectors are unit-length and finite: the check passes with its counts, and
    `indexed_vectors` runs after it."""
    ids = tenancy.upload_photos(60, 61, 62)

    result = tenancy.run(ids, check=True)

    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    found = {k: v.value for k, v in evaluation.metadata.items()}
    assert (found["checked"], found["dimension"]) == (3, SPEC.dimension)
    assert (found["non_finite"], found["off_unit_norm"], found["wrong_dimension"]) == (0, 0, 0)
    assert found["min_norm"] == pytest.approx(1.0, abs=1e-3)
    assert found["max_norm"] == pytest.approx(1.0, abs=1e-3)
    assert tenancy.points().ids == set(ids)


@pytest.mark.parametrize(
    ("vector", "problem", "counter"),
    [
        (np.full(SPEC.dimension, np.nan, np.float32), "with NaN/inf", "non_finite"),
        (np.full(SPEC.dimension, 0.05, np.float32), "not unit-length", "off_unit_norm"),
        (np.ones(SPEC.dimension // 2, np.float32), "of the wrong dimension", "wrong_dimension"),
    ],
    ids=["nan", "not-unit-length", "wrong-dimension"],
)
def test_a_bad_stored_vector_fails_the_blocking_check_and_stops_the_batch(
    tenancy: Tenancy, vector: np.ndarray, problem: str, counter: str
) -> None:
    """One bad vector among the batch's embeddings fails the check (severity ERROR,
    blocking): the run fails at the check's step, `indexed_vectors` never runs, and nothing of
    the batch reaches Qdrant or becomes `completed`."""
    ids = [plant(tenancy, vector), *tenancy.upload_photos(63, 64)]

    result = tenancy.run(ids, check=True, raise_on_error=False)

    assert not result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.blocking
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert problem in (evaluation.description or "")
    assert evaluation.metadata["checked"].value == 3
    assert evaluation.metadata[counter].value == 1
    assert {e.step_key for e in result.all_events if e.is_step_failure} == {CHECK_STEP}
    assert metadata(result, "embeddings")["embedded"] == 2
    assert metadata(result, "embeddings")["reused_stored"] == 1
    assert result.asset_materializations_for_node(node("indexed_vectors")) == []
    assert tenancy.points().ids == set()
    assert all(tenancy.statuses()[i][0] != "completed" for i in ids)


def test_a_bad_vector_outside_the_batch_does_not_hold_it_back(tenancy: Tenancy) -> None:
    """The check reads the run's own images: a bad vector stored for another image of the
    tenant (one that failed long ago, say) does not fail every later batch."""
    plant(tenancy, np.full(SPEC.dimension, np.nan, np.float32))
    ids = tenancy.upload_photos(65, 66)

    result = tenancy.run(ids, check=True)

    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["checked"].value == 2
    assert tenancy.points().ids == set(ids)
