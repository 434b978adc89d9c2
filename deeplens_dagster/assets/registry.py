"""Every registered model's assets and checks (the registry is read once, when the code
location loads: a model added to `DEEPLENS_MODELS_FILE`, or a model file changed, takes a reload
of the code location), and which of them a run selects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from deeplens.model.registry import list_models
from deeplens_dagster.assets.checks import model_checks
from deeplens_dagster.assets.ingest import ModelAssets, images, model_assets

MODELS: dict[str, ModelAssets] = {name: model_assets(spec) for name, spec in list_models().items()}
CHECKS: dict[str, list[dg.AssetChecksDefinition]] = {
    name: model_checks(assets) for name, assets in MODELS.items()
}


def all_assets() -> list[dg.AssetsDefinition]:
    return [images, *(a for m in MODELS.values() for a in m.all)]


def all_checks() -> list[dg.AssetChecksDefinition]:
    return [c for checks in CHECKS.values() for c in checks]


@dataclass(frozen=True)
class Selection:
    """What a run of the `ingest` job runs: its assets, its checks, and its batch's config."""

    assets: list[dg.AssetKey]
    checks: list[dg.AssetCheckKey]
    ops: list[str]

    def run_config(self, image_ids: list[str]) -> dict[str, Any]:
        return {"ops": {op: {"config": {"image_ids": image_ids}} for op in self.ops}}


def batch_selection(models: list[str]) -> Selection:
    """A sensor batch: `images`, then embeddings and index of each of the tenant's models that
    is registered, checked by their vectors' check (the retrieval check is for rebuilds)."""
    held = [MODELS[m] for m in models if m in MODELS]
    chosen = [images, *(a for m in held for a in (m.embeddings, m.indexed_vectors))]
    return Selection(
        assets=[a.key for a in chosen],
        checks=[next(iter(CHECKS[m.spec.name][0].check_keys)) for m in held],
        ops=[a.op.name for a in chosen],
    )


def rebuild_selection(model: str) -> Selection:
    """A rebuild of one model of a tenant: `images` and the model's three assets, all checks."""
    assets = MODELS[model]
    chosen = [images, *assets.all]
    return Selection(
        assets=[a.key for a in chosen],
        checks=[k for c in CHECKS[model] for k in c.check_keys],
        ops=[a.op.name for a in chosen],
    )
