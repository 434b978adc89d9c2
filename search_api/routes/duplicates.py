"""Duplicate groups of the caller's tenant: exact (the same picture in other files) and near
(copies resized, cropped, recompressed...). Kept up to date by the code location's
`duplicate_groups` asset as images arrive and leave."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import Field

from deeplens import duplicates
from deeplens.catalog import duplicates as store
from search_api.deps import DbDep, TenantDep
from search_api.schemas import ApiModel

router = APIRouter(prefix="/api/v1/duplicates", tags=["duplicates"])


class DuplicateGroup(ApiModel):
    image_ids: list[uuid.UUID]
    tier: Literal["exact", "near"]
    score: float = Field(description="1 for exact; for near, the group's weakest similarity.")


class DuplicateGroups(ApiModel):
    groups: list[DuplicateGroup]
    next_cursor: str | None


class DuplicateSettings(ApiModel):
    near_threshold: float | None = Field(
        None,
        ge=0.5,
        le=1.0,
        description=(
            "Similarity (cosine) above which two images are near duplicates; null for the "
            f"default ({duplicates.DEFAULT_NEAR_THRESHOLD})."
        ),
    )


@router.get("", response_model=DuplicateGroups)
def list_groups(
    tenant: TenantDep,
    db: DbDep,
    tier: Annotated[Literal["exact", "near"], Query()] = "near",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the page before.")] = None,
) -> DuplicateGroups:
    """The tenant's duplicate groups of a tier, largest first, page by page."""
    try:
        after = int(cursor) if cursor else 0
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "cursor is not one this API gave: pass `nextCursor`"
        ) from exc
    with db.connection() as conn:
        found = store.page(conn, tenant.tenant_id, tier, after, limit + 1)
    more = len(found) > limit
    found = found[:limit]
    return DuplicateGroups(
        groups=[
            DuplicateGroup(image_ids=g.image_ids, tier=g.tier, score=round(g.score, 4))
            for g in found
        ],
        next_cursor=str(found[-1].group_no + 1) if more else None,
    )


@router.get("/settings", response_model=DuplicateSettings)
def get_settings(tenant: TenantDep, db: DbDep) -> DuplicateSettings:
    with db.connection() as conn:
        return DuplicateSettings(near_threshold=store.threshold(conn, tenant.tenant_id))


@router.put("/settings", response_model=DuplicateSettings)
def put_settings(body: DuplicateSettings, tenant: TenantDep, db: DbDep) -> DuplicateSettings:
    """Set the near-duplicate threshold; the groups are recomputed with it shortly."""
    with db.connection() as conn:
        store.set_threshold(conn, tenant.tenant_id, body.near_threshold)
    return body
