"""The same operations through an unmodified ``QdrantClient`` against the local server and
against qdrant-client's own local mode (``:memory:``) give the same results."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as m
from qdrant_client.http.exceptions import UnexpectedResponse

pytestmark = [
    pytest.mark.filterwarnings("ignore:Local mode:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

DIM = 8
N = 120
EXACT = m.SearchParams(exact=True)


def _id(i: int) -> int | str:
    """Integers for the first points, UUIDs for the rest: both kinds of Qdrant id."""
    return i if i < 80 else str(uuid.uuid5(uuid.NAMESPACE_URL, f"point-{i}"))


def _payload(i: int) -> dict[str, Any]:
    return {
        "group": i % 4,
        "name": f"item-{i}",
        "price": i / 3,
        "tags": ["red" if i % 2 else "blue", "x" if i % 3 == 0 else "y"],
        "created": f"2024-01-{i % 28 + 1:02d}T00:00:00Z",
    }


def _plain(value: Any) -> Any:
    """Models as plain data, without the fields that legitimately differ (versions, op ids)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        data = value.model_dump(exclude={"version", "operation_id", "shard_key", "order_value"})
        return _plain(data)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def assert_same(remote: Any, local: Any, where: str) -> None:
    """Equal, except floats (scores, normalised vectors), which may differ by 1e-4."""
    if isinstance(remote, float) or isinstance(local, float):
        assert math.isclose(remote, local, abs_tol=1e-4), f"{where}: {remote} != {local}"
    elif isinstance(remote, dict) and isinstance(local, dict):
        assert remote.keys() == local.keys(), f"{where}: {remote.keys()} != {local.keys()}"
        for key in remote:
            assert_same(remote[key], local[key], f"{where}.{key}")
    elif isinstance(remote, list) and isinstance(local, list):
        assert len(remote) == len(local), f"{where}: {remote} != {local}"
        for i, (a, b) in enumerate(zip(remote, local, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert remote == local, f"{where}: {remote!r} != {local!r}"


def _scroll_all(c: QdrantClient, name: str, flt: m.Filter | None, **kw: Any) -> list[Any]:
    pages, offset = [], None
    while True:
        points, offset = c.scroll(name, scroll_filter=flt, limit=7, offset=offset, **kw)
        pages.append((points, offset))
        if offset is None:
            return pages


def _exact_query(c: QdrantClient, name: str, query: list[float], flt: m.Filter | None) -> Any:
    found = c.query_points(
        name, query=query, query_filter=flt, limit=10, with_payload=True, search_params=EXACT
    )
    return found.points


def _count(c: QdrantClient, name: str, flt: m.Filter | None) -> int:
    return c.count(name, count_filter=flt).count


FILTERS = {
    "none": None,
    "match value": m.Filter(must=[m.FieldCondition(key="group", match=m.MatchValue(value=2))]),
    "should/must_not": m.Filter(
        should=[m.FieldCondition(key="tags", match=m.MatchAny(any=["red"]))],
        must_not=[m.HasIdCondition(has_id=[1, 3, 5, _id(81)])],
    ),
    "range": m.Filter(must=[m.FieldCondition(key="price", range=m.Range(gte=5, lt=20))]),
    "datetime range": m.Filter(
        must=[m.FieldCondition(key="created", range=m.DatetimeRange(gte="2024-01-20T00:00:00Z"))]
    ),
    "nested filter": m.Filter(
        must=[
            m.Filter(should=[m.FieldCondition(key="name", match=m.MatchValue(value="item-7"))]),
            m.FieldCondition(key="group", match=m.MatchExcept(**{"except": [0]})),
        ]
    ),
    "has_id": m.Filter(must=[m.HasIdCondition(has_id=[_id(i) for i in range(0, N, 9)])]),
}


def _points_scenario(c: QdrantClient, name: str, distance: m.Distance) -> list[tuple[str, Any]]:
    """Run the operations on one client; answer (step, outcome) in order."""
    vectors = np.random.default_rng(7).standard_normal((N, DIM)).round(6).tolist()
    query = np.random.default_rng(8).standard_normal(DIM).tolist()
    steps: list[tuple[str, Any]] = []

    def step(label: str, action: Callable[[], Any]) -> None:
        steps.append((label, _plain(action())))

    params = m.VectorParams(size=DIM, distance=distance)
    step("create", lambda: c.create_collection(name, vectors_config=params))
    step("exists", lambda: (c.collection_exists(name), c.collection_exists(name + "_nope")))
    step("listed", lambda: name in {d.name for d in c.get_collections().collections})
    head = [m.PointStruct(id=_id(i), vector=vectors[i], payload=_payload(i)) for i in range(60)]
    step("upsert points", lambda: c.upsert(name, points=head, wait=True).status)
    rest = range(60, N)
    batch = m.Batch(
        ids=[_id(i) for i in rest],
        vectors=[vectors[i] for i in rest],
        payloads=[_payload(i) for i in rest],
    )
    step("upsert batch", lambda: c.upsert(name, points=batch, wait=True).status)
    info = c.get_collection(name)
    step("info", lambda: (info.points_count, info.config.params.vectors, info.status))
    step("count", lambda: c.count(name, exact=True).count)
    step("count filtered", lambda: c.count(name, count_filter=FILTERS["match value"]).count)
    ids = [3, _id(90), 9999]
    step("retrieve", lambda: c.retrieve(name, ids, with_payload=True, with_vectors=True))
    step("retrieve some payload", lambda: c.retrieve(name, [4], with_payload=["name"]))
    for label, flt in FILTERS.items():
        step(f"scroll {label}", partial(_scroll_all, c, name, flt))
        step(f"query {label}", partial(_exact_query, c, name, query, flt))
        step(f"count {label}", partial(_count, c, name, flt))
    step("scroll vectors", lambda: c.scroll(name, limit=3, with_vectors=True, with_payload=False))
    step("query by id", lambda: c.query_points(name, query=5, limit=5, search_params=EXACT).points)
    step(
        "query offset+threshold",
        lambda: (
            c.query_points(
                name, query=query, limit=4, offset=3, score_threshold=0.1, search_params=EXACT
            ).points
        ),
    )
    step("index", lambda: c.create_payload_index(name, "group", m.PayloadSchemaType.INTEGER).status)
    flt = FILTERS["match value"]
    step(
        "query indexed",
        lambda: c.query_points(name, query=query, query_filter=flt, search_params=EXACT).points,
    )
    step("set payload", lambda: c.set_payload(name, {"extra": "yes"}, points=[1, 2]).status)
    step("overwrite payload", lambda: c.overwrite_payload(name, {"only": 1}, points=[3]).status)
    step("delete payload", lambda: c.delete_payload(name, keys=["extra"], points=[1]).status)
    step("clear payload", lambda: c.clear_payload(name, points_selector=[2]).status)
    step("after payload ops", lambda: c.retrieve(name, [1, 2, 3]))
    step("delete ids", lambda: c.delete(name, points_selector=[0, 1, _id(80)]).status)
    by_group = m.FilterSelector(
        filter=m.Filter(must=[m.FieldCondition(key="group", match=m.MatchValue(value=3))])
    )
    step("delete filter", lambda: c.delete(name, points_selector=by_group).status)
    step("count after deletes", lambda: c.count(name).count)
    step("scroll after deletes", lambda: _scroll_all(c, name, None, with_payload=False))
    return steps


def _aliases(c: QdrantClient, names: set[str]) -> list[tuple[str, str]]:
    found = c.get_aliases().aliases
    return sorted((a.alias_name, a.collection_name) for a in found if a.collection_name in names)


def _alias_scenario(c: QdrantClient, name: str, distance: m.Distance) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    other, alias = f"{name}_b", f"{name}_alias"
    params = m.VectorParams(size=2, distance=distance)
    for collection, value in ((name, 1.0), (other, 2.0)):
        c.create_collection(collection, vectors_config=params)
        c.upsert(collection, [m.PointStruct(id=1, vector=[value, 0.0], payload={"c": collection})])

    def step(label: str, value: Any) -> None:
        steps.append((label, _plain(value)))

    create = m.CreateAliasOperation(
        create_alias=m.CreateAlias(collection_name=name, alias_name=alias)
    )
    step("create alias", c.update_collection_aliases([create]))
    step("aliases", _aliases(c, {name, other}))
    step("aliases of collection", c.get_collection_aliases(name).aliases)
    step("aliases of alias", c.get_collection_aliases(alias).aliases)
    step("query through alias", c.query_points(alias, query=[1.0, 0.0], with_payload=True).points)
    step("exists through alias", c.collection_exists(alias))
    renamed = f"{alias}_2"
    rename = m.RenameAliasOperation(
        rename_alias=m.RenameAlias(old_alias_name=alias, new_alias_name=renamed)
    )
    step("rename alias", c.update_collection_aliases([rename]))
    step("aliases renamed", _aliases(c, {name, other}))
    swap: list[m.DeleteAliasOperation | m.CreateAliasOperation] = [
        m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=renamed)),
        m.CreateAliasOperation(
            create_alias=m.CreateAlias(collection_name=other, alias_name=renamed)
        ),
    ]
    step("swap alias", c.update_collection_aliases(swap))
    step("query swapped", c.query_points(renamed, query=[1.0, 0.0], with_payload=True).points)
    step("delete alias", c.update_collection_aliases([swap[0]]))
    step("aliases deleted", _aliases(c, {name, other}))
    step("re-create alias", c.update_collection_aliases([create]))
    step("delete collection", c.delete_collection(name))
    step("delete again", c.delete_collection(name))
    step("aliases gone with collection", _aliases(c, {name, other}))
    step("exists after delete", (c.collection_exists(name), c.collection_exists(alias)))
    step("delete other", c.delete_collection(other))
    return steps


@pytest.mark.parametrize("distance", [m.Distance.COSINE, m.Distance.DOT, m.Distance.EUCLID])
@pytest.mark.parametrize("scenario", [_points_scenario, _alias_scenario])
def test_same_results_as_local_mode(
    client: QdrantClient, name: str, scenario: Any, distance: m.Distance
) -> None:
    memory = QdrantClient(":memory:")
    remote_steps = scenario(client, name, distance)
    local_steps = scenario(memory, name, distance)
    assert [label for label, _ in remote_steps] == [label for label, _ in local_steps]
    for (label, remote), (_, local) in zip(remote_steps, local_steps, strict=True):
        assert_same(remote, local, label)


def test_errors_like_qdrant(client: QdrantClient, name: str) -> None:
    """Each failure raises in both; the server answers Qdrant's status code and message."""
    memory = QdrantClient(":memory:")
    params = m.VectorParams(size=4, distance=m.Distance.COSINE)
    cases: list[tuple[int, str, Callable[[QdrantClient], Any]]] = [
        (404, "Collection `nope_x` doesn't exist!", lambda c: c.get_collection("nope_x")),
        (404, "doesn't exist", lambda c: c.query_points("nope_x", query=[1.0, 0, 0, 0])),
        (
            404,
            "doesn't exist",
            lambda c: c.upsert("nope_x", [m.PointStruct(id=1, vector=[1.0] * 4)]),
        ),
        (
            400,
            "Vector dimension error: expected dim: 4, got 3",
            lambda c: c.upsert(name, [m.PointStruct(id=1, vector=[1.0, 2.0, 3.0])]),
        ),
        (400, "Vector dimension error", lambda c: c.query_points(name, query=[1.0, 2.0, 3.0])),
        (409, f"Collection `{name}` already exists!", lambda c: c.create_collection(name, params)),
        (
            404,
            "Collection `nope_x` doesn't exist!",
            lambda c: c.update_collection_aliases(
                [
                    m.CreateAliasOperation(
                        create_alias=m.CreateAlias(collection_name="nope_x", alias_name="a")
                    )
                ]
            ),
        ),
    ]
    for c in (client, memory):
        c.create_collection(name, vectors_config=params)
    for status, message, action in cases:
        with pytest.raises(UnexpectedResponse) as remote:
            action(client)
        assert remote.value.status_code == status
        assert message in remote.value.content.decode()
        with pytest.raises(ValueError):  # qdrant-client's local mode raises ValueError
            action(memory)
    client.delete_collection(name)
