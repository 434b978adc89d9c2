"""The ingest job: `images` and every registered model's assets of one tenant partition, in one
process. A run selects the part it needs (`deeplens_dagster.assets.registry`)."""

import dagster as dg

from deeplens_dagster.assets.registry import all_assets

# The in-process executor: no subprocess per step, so a small batch is searchable in seconds.
ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(*all_assets()),
    executor_def=dg.in_process_executor,
    description="Embed and index a batch of a tenant's uploads (or, with no batch, rebuild its "
    "models' indexes).",
)

duplicates_job = dg.define_asset_job(
    "duplicates",
    selection=dg.AssetSelection.assets("duplicate_groups"),
    executor_def=dg.in_process_executor,
    description="Update a tenant's duplicate groups with its newly indexed images.",
)
