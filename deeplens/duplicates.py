"""Duplicate groups: the same picture in several files (exact), and pictures so similar that one
is a copy of the other, resized, cropped, recompressed or brightened (near).

- Exact: the same picture in another file (re-saved, re-tagged, converted losslessly) decodes to
  the same pixels and so gets the same vector, bit for bit: images of a tenant whose stored
  vectors are identical group. Identical bytes never get that far (an upload of them is the same
  image). A JPEG decodes at a reduced scale for the model, so the same pixels as a JPEG and as a
  PNG differ slightly: such a pair lands in the near tier.
- Near: each new image asks its tenant's index for its neighbours scoring at least the tenant's
  threshold; those pairs are edges, and a group is a connected set of edges. A group's score is
  its weakest edge.

New images are looked at as they are indexed (a few per query, batched); a deleted image's edges
and memberships go with its row; the groups are recomputed from hashes and edges each time.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg

from deeplens.catalog import duplicates as store
from deeplens.catalog.duplicates import Group
from deeplens.naming import point_id

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

log = logging.getLogger(__name__)

# Measured with the default model on 60 synthetic 640x480 photos (`synthetic.variants`): copies
# resized to half (lowest score 0.936), recompressed at JPEG q60 (0.912), brightened by 20%
# (0.959), mirrored (0.919) or cropped to 90% of each side (5th percentile 0.896, lowest 0.832)
# score above 0.90 but a few crops; another shot of the same scene (the camera moved by a third,
# the light changed) scored at most 0.908 (95th percentile 0.872); different photos at most
# 0.781. tests/e2e/test_duplicates.py holds the default to precision and recall >= 0.95 on
# such a set. Small pictures score lower: at 320x240 the half-size copies' 5th percentile is
# 0.877 and that set's recall at 0.90 was 0.88 (precision 0.98); a tenant of thumbnails may
# want a lower threshold (PUT /api/v1/duplicates/settings).
DEFAULT_NEAR_THRESHOLD = 0.90
NEIGHBOURS = 10
QUERY_BATCH = 64
PER_RUN = 5_000


@dataclass
class Update:
    looked_at: int = 0
    new_edges: int = 0
    groups: dict[str, int] = field(default_factory=dict)
    largest: dict[str, int] = field(default_factory=dict)


def neighbours(
    client: QdrantClient, collection: str, ids: list[uuid.UUID], threshold: float
) -> list[tuple[uuid.UUID, uuid.UUID, float]]:
    """Pairs (a < b) of `ids` and their neighbours in `collection` scoring >= `threshold`."""
    # Imported here: the code location loads this module, and a run worker should not pay for
    # qdrant-client's import before its first step (see `QdrantResource`).
    from qdrant_client import models as qm

    found: dict[tuple[uuid.UUID, uuid.UUID], float] = {}
    for offset in range(0, len(ids), QUERY_BATCH):
        part = ids[offset : offset + QUERY_BATCH]
        requests = [
            qm.QueryRequest(
                query=point_id(image_id),
                limit=NEIGHBOURS,
                score_threshold=threshold,
                filter=qm.Filter(must_not=[qm.HasIdCondition(has_id=[point_id(image_id)])]),
            )
            for image_id in part
        ]
        for image_id, answer in zip(
            part, client.query_batch_points(collection, requests), strict=True
        ):
            for point in answer.points:
                other = uuid.UUID(str(point.id))
                pair = (min(image_id, other), max(image_id, other))
                found[pair] = max(found.get(pair, 0.0), float(point.score))
    return [(a, b, score) for (a, b), score in found.items()]


def components(
    exact: list[list[uuid.UUID]], edges: list[tuple[uuid.UUID, uuid.UUID, float]]
) -> list[Group]:
    """The groups: exact ones as given, near ones as the edges' connected components; largest
    first within each tier."""
    parent: dict[uuid.UUID, uuid.UUID] = {}

    def root(x: uuid.UUID) -> uuid.UUID:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in edges:
        parent[root(a)] = root(b)
    members: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for node in list(parent):
        members[root(node)].append(node)
    weakest: dict[uuid.UUID, float] = {}
    for a, _, score in edges:
        r = root(a)
        weakest[r] = min(weakest.get(r, 1.0), score)
    near = sorted(
        (sorted(ids) for ids in members.values() if len(ids) > 1), key=lambda g: (-len(g), g[0])
    )
    groups = [
        Group("exact", n, ids, 1.0)
        for n, ids in enumerate(sorted(exact, key=lambda g: (-len(g), g[0])))
    ]
    groups += [Group("near", n, ids, weakest[root(ids[0])]) for n, ids in enumerate(near)]
    return groups


def update(
    conn: psycopg.Connection, client: QdrantClient, tenant_id: str, model: str, collection: str
) -> Update:
    """Look at the tenant's new images and recompute its groups."""
    threshold = store.threshold(conn, tenant_id) or DEFAULT_NEAR_THRESHOLD
    todo = store.ungrouped(conn, tenant_id, PER_RUN)
    outcome = Update(looked_at=len(todo))
    found = neighbours(client, collection, todo, threshold) if todo else []
    outcome.new_edges = len(found)
    store.record(conn, tenant_id, model, todo, found)
    groups = components(
        store.exact_groups(conn, tenant_id), store.edges(conn, tenant_id, threshold)
    )
    store.replace_groups(conn, tenant_id, groups)
    for tier in store.TIERS:
        sizes = [len(g.image_ids) for g in groups if g.tier == tier]
        outcome.groups[tier] = len(sizes)
        outcome.largest[tier] = max(sizes, default=0)
    return outcome
