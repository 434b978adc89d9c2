"""The ingest assets, `images` → `embeddings` → `indexed_vectors`, materialised in-process on
the real catalog with a fake model and an in-memory Qdrant."""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest

from deeplens import events, vectors
from deeplens.model.registry import get_model
from deeplens_dagster.assets.ingest import images
from deeplens_dagster.assets.registry import MODELS
from deeplens_dagster.resources import CatalogResource
from deeplens_dagster.sensors import reconciler as reconciling
from deeplens_dagster.sensors.reconciler import reconciler
from tests.middle import seed
from tests.middle.fakes import FakeEmbedder, fake_vector
from tests.middle.runs import INGEST, Tenancy, metadata

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

DIMENSION = get_model(seed.MODEL).dimension


def test_a_batch_becomes_searchable_with_one_completed_event_per_image(tenancy: Tenancy) -> None:
    """A sensor-style batch: every image ends `completed`, the alias holds exactly their points
    (each found first by its own vector), each image has one `processing.completed` outbox row,
    and the three materialisations count what happened."""
    data = [seed.photo(n) for n in range(3)]
    ids = [tenancy.upload(d, f"{n}.jpg").image_id for n, d in enumerate(data)]

    result = tenancy.run(ids, tags={"deeplens/offsets": "0:0-2"})

    assert result.success
    assert tenancy.statuses() == {i: ("completed", None) for i in ids}
    assert tenancy.points().ids == set(ids)
    hits = vectors.search(tenancy.qdrant, tenancy.alias, fake_vector(data[1], DIMENSION), 1)
    assert [h.image_id for h in hits] == [ids[1]]
    assert hits[0].payload["tenantId"] == tenancy.tenant_id
    assert hits[0].payload["fileName"] == "1.jpg"

    completed = tenancy.outbox(events.TOPIC_COMPLETED)
    assert sorted(p["data"]["imageId"] for p in completed) == sorted(str(i) for i in ids)
    for payload in completed:
        event = events.ProcessingCompleted.model_validate(payload)
        assert (event.data.collection, event.data.model_name) == (tenancy.alias, seed.MODEL)
    assert tenancy.outbox(events.TOPIC_FAILED) == []

    taken = metadata(result, "images")
    assert taken["mode"] == "batch"
    assert (taken["batch_size"], taken["images"], taken["to_process"]) == (3, 3, 3)
    assert (taken["already_completed"], taken["missing_blobs"]) == (0, 0)
    assert taken["bytes"] == sum(len(d) for d in data)
    assert taken["kafka_offsets"] == "0:0-2"
    embedded = metadata(result, "embeddings")
    assert (embedded["embedded"], embedded["reused_stored"], embedded["failed"]) == (3, 0, 0)
    assert (embedded["model"], embedded["dimension"]) == (seed.MODEL, DIMENSION)
    indexed = metadata(result, "indexed_vectors")
    assert (indexed["upserted"], indexed["newly_searchable"]) == (3, 3)
    assert (indexed["without_vector"], indexed["points_in_collection"]) == (0, 3)
    assert (indexed["collection_alias"], indexed["mode"]) == (tenancy.alias, "batch")
    assert indexed["collection"] == tenancy.points().collection


def test_an_undecodable_image_fails_alone_with_its_reason(tenancy: Tenancy) -> None:
    """Bytes that are no image (the image's own fault) fail that image, with the decoder's
    reason and a `processing.failed` event; the run succeeds and the rest of the batch is
    indexed."""
    good = tenancy.upload_photos(10, 11)
    bad = tenancy.upload(b"plain text, not a picture\n" * 8, "notes.jpg").image_id

    result = tenancy.run([good[0], bad, good[1]])

    assert result.success
    status = tenancy.statuses()
    assert status[good[0]] == status[good[1]] == ("completed", None)
    state, reason = status[bad]
    assert state == "failed"
    assert reason is not None and reason.startswith("could not decode the image:")
    assert tenancy.points().ids == set(good)
    [failed] = tenancy.outbox(events.TOPIC_FAILED)
    assert failed["data"]["imageId"] == str(bad)
    assert (failed["data"]["stage"], failed["data"]["reason"]) == ("embeddings", reason)
    assert sorted(tenancy.outbox_ids(events.TOPIC_COMPLETED)) == sorted(good)
    embedded = metadata(result, "embeddings")
    assert (embedded["embedded"], embedded["failed"]) == (2, 1)
    assert embedded["failures"] == {str(bad): reason}
    assert metadata(result, "indexed_vectors")["newly_searchable"] == 2


def test_a_missing_blob_fails_that_image_alone(tenancy: Tenancy) -> None:
    """An image whose bytes are not in the blob store fails in `images` with that reason; it
    is never embedded, and the others complete."""
    [good] = tenancy.upload_photos(20)
    lost = tenancy.upload(seed.photo(21), store_blob=False)
    assert tenancy.blobs.missing([lost.blob_key]) == {lost.blob_key}

    result = tenancy.run([good, lost.image_id])

    assert result.success
    status = tenancy.statuses()
    assert status[good] == ("completed", None)
    state, reason = status[lost.image_id]
    assert state == "failed"
    assert reason is not None and reason.startswith("image bytes missing from the blob store")
    assert tenancy.points().ids == {good}
    assert set(tenancy.embedded_at()) == {good}
    [failed] = tenancy.outbox(events.TOPIC_FAILED)
    assert (failed["data"]["imageId"], failed["data"]["stage"]) == (str(lost.image_id), "images")
    assert metadata(result, "images")["missing_blobs"] == 1
    assert metadata(result, "embeddings")["embedded"] == 1


def test_rerunning_a_batch_changes_nothing(tenancy: Tenancy) -> None:
    """The same batch again (a duplicate event, a re-executed run): no image is embedded or
    indexed again, no event is emitted again, the points stay the same."""
    ids = tenancy.upload_photos(30, 31)
    assert tenancy.run(ids).success
    stored, before = tenancy.embedded_at(), tenancy.points()
    announced = tenancy.outbox_ids(events.TOPIC_COMPLETED)
    assert before.ids == set(ids) and sorted(announced) == sorted(ids)

    again = tenancy.run(ids)

    assert again.success
    assert tenancy.points() == before
    assert tenancy.embedded_at() == stored
    assert tenancy.outbox_ids(events.TOPIC_COMPLETED) == announced
    assert tenancy.statuses() == {i: ("completed", None) for i in ids}
    assert metadata(again, "images")["to_process"] == 0
    embedded = metadata(again, "embeddings")
    assert (embedded["embedded"], embedded["failed"]) == (0, 0)
    indexed = metadata(again, "indexed_vectors")
    assert (indexed["upserted"], indexed["newly_searchable"]) == (0, 0)
    assert indexed["points_in_collection"] == 2


def test_a_retried_run_reuses_the_stored_embeddings(tenancy: Tenancy) -> None:
    """A run that stopped after `embeddings` (say Qdrant was down), run again: the model is
    not run again (`reused_stored`, the stored rows untouched) and the batch completes."""
    ids = tenancy.upload_photos(40, 41)
    first = tenancy.run(ids, assets=INGEST[:2])
    assert first.success
    assert metadata(first, "embeddings")["embedded"] == 2
    assert {s for s, _ in tenancy.statuses().values()} == {"processing"}
    stored = tenancy.embedded_at()
    assert set(stored) == set(ids)

    retried = tenancy.run(ids)

    assert retried.success
    embedded = metadata(retried, "embeddings")
    assert (embedded["embedded"], embedded["reused_stored"]) == (0, 2)
    assert tenancy.embedded_at() == stored
    assert tenancy.statuses() == {i: ("completed", None) for i in ids}
    assert tenancy.points().ids == set(ids)


def test_a_rebuild_swaps_the_alias_and_the_old_collection_goes_after_its_grace(
    tenancy: Tenancy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run without a batch (a backfill) builds a new physical collection from the stored
    embeddings and points the alias at it: the alias holds exactly the completed images, and
    nothing is embedded or announced again. The old collection is kept for a rollback, recorded
    as retired, and dropped by the reconciler's first tick after the grace period."""
    ids = tenancy.upload_photos(50, 51, 52)
    bad = tenancy.upload(b"\x00\x01 not an image", "zeros.jpg").image_id
    assert tenancy.run([*ids, bad]).success
    old = tenancy.points()
    assert old.collection is not None and old.ids == set(ids)
    stored = tenancy.embedded_at()
    announced = tenancy.outbox_ids(events.TOPIC_COMPLETED)

    rebuilt = tenancy.run()

    assert rebuilt.success
    new = tenancy.points()
    assert new.collection is not None and new.collection != old.collection
    assert new.collection.startswith(tenancy.alias + "_v")
    assert new.ids == set(ids)
    status = tenancy.statuses()
    assert sum(1 for s, _ in status.values() if s == "completed") == len(new.ids)
    assert status[bad][0] == "failed"
    assert tenancy.embedded_at() == stored
    assert tenancy.outbox_ids(events.TOPIC_COMPLETED) == announced
    assert metadata(rebuilt, "images")["mode"] == "rebuild"
    embedded = metadata(rebuilt, "embeddings")
    assert (embedded["embedded"], embedded["reused_stored"]) == (0, 3)
    indexed = metadata(rebuilt, "indexed_vectors")
    assert (indexed["mode"], indexed["collection"], indexed["upserted"]) == (
        "rebuild",
        new.collection,
        3,
    )
    swapped = metadata(rebuilt, "serving_index")
    assert (swapped["rebuilt_from"], swapped["collection"]) == (old.collection, new.collection)
    assert (swapped["points_in_collection"], swapped["newly_searchable"]) == (3, 0)
    assert collections(tenancy) == {old.collection, new.collection}
    assert retired(tenancy) == {old.collection: new.collection}

    # A tick past the grace period, that leaves the images of other tests' tenants alone.
    monkeypatch.setenv("DEEPLENS_COLLECTION_GRACE_SECONDS", "0")
    monkeypatch.setenv("DEEPLENS_STUCK_AFTER_SECONDS", str(10**9))
    monkeypatch.setattr(reconciling, "ORPHAN_AFTER_SECONDS", float(10**9))
    with dg.build_sensor_context(
        instance=tenancy.instance,
        resources={"catalog_db": CatalogResource(), "qdrant": tenancy.resources["qdrant"]},
    ) as context:
        reconciler(context)

    assert collections(tenancy) == {new.collection}
    assert retired(tenancy) == {}
    assert tenancy.points() == new


def test_an_invalid_vector_from_the_model_fails_that_image_alone(tenancy: Tenancy) -> None:
    """The model gives one image a NaN vector: that image fails in `embeddings` with the
    reason, its vector is never stored, and the rest of the batch is indexed."""
    good = tenancy.upload_photos(80, 81)
    data = seed.photo(82)
    odd = tenancy.upload(data, "odd.jpg").image_id
    embedder = FakeEmbedder(nan_for=[hashlib.sha256(data).hexdigest()])

    result = tenancy.run([*good, odd], resources={**tenancy.resources, "embedder": embedder})

    assert result.success
    state, reason = tenancy.statuses()[odd]
    assert state == "failed"
    assert reason is not None and "invalid vector" in reason and "NaN" in reason
    assert set(tenancy.embedded_at()) == set(good)
    assert tenancy.points().ids == set(good)
    [failed] = tenancy.outbox(events.TOPIC_FAILED)
    assert (failed["data"]["imageId"], failed["data"]["stage"]) == (str(odd), "embeddings")
    assert metadata(result, "embeddings")["failed"] == 1


def collections(tenancy: Tenancy) -> set[str]:
    return {c.name for c in tenancy.qdrant.get_collections().collections}


def retired(tenancy: Tenancy) -> dict[str, str]:
    """The tenant's retired collections, each with the collection that replaced it."""
    rows = tenancy.conn.execute(
        "SELECT collection, replaced_by FROM deeplens.retired_collections WHERE tenant_id = %s",
        (tenancy.tenant_id,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def test_a_model_the_tenant_does_not_hold_builds_nothing_and_takes_up_no_upload(
    tenancy: Tenancy,
) -> None:
    """A backfill of another model's assets (with `images`) for a tenant that does not hold
    it: those steps do nothing (no materialization), and the tenant's waiting upload stays for
    its sensor run, since this run would not make it searchable."""
    [image_id] = tenancy.upload_photos(401)
    other = MODELS["efficientnet_lite2"]

    result = tenancy.run(assets=(images, *other.all))

    assert result.success
    assert metadata(result, "images")["to_process"] == 0
    for asset in other.all:
        assert result.asset_materializations_for_node(asset.op.name) == []
    assert tenancy.statuses()[image_id][0] == "uploaded"
