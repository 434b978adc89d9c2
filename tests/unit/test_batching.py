import uuid

from deeplens import batching, events


def uploaded(tenant: str, image_id: uuid.UUID | None = None) -> bytes:
    image_id = image_id or uuid.uuid4()
    return events.ImageUploaded(
        tenant_id=tenant,
        correlation_id=image_id,
        data=events.ImageUploadedData(
            image_id=image_id,
            file_path=f"{tenant}/ab/abc",
            file_name="a.jpg",
            file_size=10,
            content_type="image/jpeg",
        ),
    ).to_json()


def test_groups_by_tenant_in_offset_order_and_caps_batches() -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    messages = [
        batching.Message(0, 10, uploaded("acme", ids[0])),
        batching.Message(0, 11, uploaded("beta", ids[1])),
        batching.Message(1, 3, uploaded("acme", ids[2])),
        batching.Message(0, 12, uploaded("acme", ids[3])),
        batching.Message(1, 4, uploaded("acme", ids[4])),
    ]
    plan = batching.plan(messages, lambda t: True, max_batch=2, start_offsets={0: 10, 1: 3, 2: 7})
    assert [(b.tenant_id, b.image_ids) for b in plan.batches] == [
        ("acme", [str(ids[0]), str(ids[3])]),
        ("acme", [str(ids[2]), str(ids[4])]),
        ("beta", [str(ids[1])]),
    ]
    assert plan.batches[0].offsets == "0:10-12"
    assert plan.batches[1].offsets == "1:3-4"
    assert plan.next_offsets == {0: 13, 1: 5, 2: 7}
    assert plan.rejected == []


def test_run_keys_are_deterministic_for_the_same_slice() -> None:
    messages = [batching.Message(2, n, uploaded("acme")) for n in range(3)]
    first = batching.plan(messages, lambda t: True, 10, {}, cluster="c1")
    again = batching.plan(list(reversed(messages)), lambda t: True, 10, {}, cluster="c1")
    assert [b.run_key for b in first.batches] == [b.run_key for b in again.batches]
    assert first.batches[0].run_key == "deeplens.images.uploaded/c1/acme/2:0-2"
    # A new broker (e.g. the embedded one after a restart) starts its offsets over: new keys.
    other = batching.plan(messages, lambda t: True, 10, {}, cluster="c2")
    assert other.batches[0].run_key != first.batches[0].run_key


def test_malformed_and_unknown_tenant_events_are_rejected_with_a_reason() -> None:
    good = uuid.uuid4()
    messages = [
        batching.Message(0, 0, b"not json"),
        batching.Message(0, 1, b'{"eventType": "image.uploaded", "tenantId": "acme"}'),
        batching.Message(0, 2, uploaded("gone")),
        batching.Message(0, 3, uploaded("acme", good)),
        batching.Message(0, 4, None),
    ]
    plan = batching.plan(messages, lambda t: t == "acme", 10, {})
    assert [b.image_ids for b in plan.batches] == [[str(good)]]
    reasons = [r.reason for r in plan.rejected]
    assert len(reasons) == 4
    assert reasons[0].startswith("malformed image.uploaded event")
    assert "correlationId" in reasons[1] or "data" in reasons[1]
    assert "tenant 'gone' does not exist" in reasons[2]
    assert plan.rejected[2].tenant_id == "gone"
    assert plan.next_offsets == {0: 5}
