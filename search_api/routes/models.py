"""A tenant's models (``X-Admin-Key``): list, add, switch the serving one, retire.

Adding a model makes it `pending`; a rebuild of the model's assets for the tenant's partition
(an asset backfill from the Dagster UI, or `deeplens admin models add`) builds its index beside
the serving one, and the blocking retrieval check decides whether it becomes `ready` (and, when
added with ``serve``, the serving model). Switching back is one call to ``/serve``.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from deeplens import tenancy
from deeplens.catalog import models as tenant_models
from deeplens.catalog.models import TenantModel
from deeplens.model.registry import ModelConfigError, get_model, list_models
from search_api import audit
from search_api.deps import AdminDep, DbDep
from search_api.routes.tenants import StoresDep, TenantDep
from search_api.schemas import ModelAdd, TenantModelInfo, TenantModels

router = APIRouter(prefix="/api/v1/admin/tenants", tags=["admin"], dependencies=[AdminDep])

REBUILD = (
    "launch a backfill of the assets {model}/embeddings, {model}/indexed_vectors and "
    "{model}/serving_index for partition {tenant} (Dagster UI, or `deeplens admin models "
    "rebuild {tenant} {model}`)"
)


def _info(held: TenantModel, registered: dict[str, str]) -> TenantModelInfo:
    return TenantModelInfo(
        model=held.model,
        collection=held.alias,
        state=held.state,
        serving=held.serving,
        serve_when_verified=held.serve_when_verified,
        model_version=held.model_version,
        physical_collection=held.collection,
        candidate=held.candidate,
        last_check=held.last_check,
        added_at=held.added_at,
        built_at=held.built_at,
        registered_version=registered.get(held.model),
    )


def _answer(db: DbDep, tenant_id: str, model: str = "{model}") -> TenantModels:
    """The tenant's models as they are now (the serving one is read with them)."""
    with db.connection() as conn:
        held = tenant_models.of_tenant(conn, tenant_id)
    registered = _registered()
    return TenantModels(
        tenant_id=tenant_id,
        serving_model=next((m.model for m in held if m.serving), ""),
        models=[_info(m, registered) for m in held],
        rebuild=REBUILD.format(model=model, tenant=tenant_id),
    )


def _registered() -> dict[str, str]:
    return {name: spec.version for name, spec in list_models().items() if spec.path.exists()}


@router.get("/{tenant_id}/models", response_model=TenantModels)
def list_tenant_models(tenant: TenantDep, db: DbDep) -> TenantModels:
    """The tenant's models: which serves search, each one's state, versions and last check."""
    return _answer(db, tenant.tenant_id)


@router.post(
    "/{tenant_id}/models",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TenantModels,
    responses={
        400: {"description": "Not a registered model"},
        409: {"description": "The tenant already holds the model"},
    },
)
def add_tenant_model(
    tenant: TenantDep, body: ModelAdd, stores: StoresDep, request: Request
) -> TenantModels:
    """Add a registered model to the tenant: `pending` until a rebuild of its assets builds
    its index beside the serving one (see `rebuild` in the answer). With `serve`, search moves
    to it once its index passes the retrieval check."""
    try:
        spec = get_model(body.model)
    except ModelConfigError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    try:
        tenancy.add_model(stores, tenant, spec, body.serve)
    except tenancy.ModelConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(
        "tenant.model.add", request, tenant=tenant.tenant_id, model=spec.name, serve=body.serve
    )
    return _answer(stores.db, tenant.tenant_id, spec.name)


@router.post(
    "/{tenant_id}/models/{model}/serve",
    response_model=TenantModels,
    responses={409: {"description": "The model's index is not built and verified"}},
)
def serve_tenant_model(
    tenant: TenantDep, model: str, stores: StoresDep, request: Request
) -> TenantModels:
    """Make one of the tenant's ready models serve search (the way back after a migration is
    this same call with the earlier model). Every API process takes it up within a second."""
    previous = tenant.model
    try:
        tenancy.serve_model(stores, tenant, model)
    except tenancy.ModelConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(
        "tenant.model.serve", request, tenant=tenant.tenant_id, model=model, previous=previous
    )
    return _answer(stores.db, tenant.tenant_id)


@router.delete(
    "/{tenant_id}/models/{model}",
    status_code=status.HTTP_200_OK,
    response_model=TenantModels,
    responses={
        404: {"description": "The tenant holds no such model"},
        409: {"description": "It serves search"},
    },
)
def retire_tenant_model(
    tenant: TenantDep, model: str, stores: StoresDep, request: Request
) -> TenantModels:
    """Retire a model the tenant no longer serves with: its collections and stored vectors go."""
    try:
        dropped = tenancy.retire_model(stores, tenant, model)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except tenancy.ModelConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit.record(
        "tenant.model.retire", request, tenant=tenant.tenant_id, model=model, collections=dropped
    )
    return _answer(stores.db, tenant.tenant_id)
