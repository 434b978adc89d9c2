"""The ingest job: the three assets of one tenant partition, in one process."""

import dagster as dg

from deeplens_dagster.assets.ingest import embeddings, images, indexed_vectors

# The in-process executor: no subprocess per step, so a small batch is searchable in seconds.
ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(images, embeddings, indexed_vectors),
    executor_def=dg.in_process_executor,
    description="Embed and index a batch of a tenant's uploads (or, with no batch, all of them).",
)

duplicates_job = dg.define_asset_job(
    "duplicates",
    selection=dg.AssetSelection.assets("duplicate_groups"),
    executor_def=dg.in_process_executor,
    description="Update a tenant's duplicate groups with its newly indexed images.",
)
