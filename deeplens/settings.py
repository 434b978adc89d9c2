"""Configuration read from ``DEEPLENS_*`` environment variables.

Every process (the API, the Dagster code location, run workers, the CLI) builds a ``Settings``
when it needs one; nothing is read at import time. ``deeplens up`` fills in the URLs of the
embedded servers it starts, so child processes always see a complete configuration.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEEPLENS_", extra="ignore")

    home: Path = Field(Path(".deeplens"), description="Where the local stack keeps its data.")
    database_url: str | None = Field(None, description="PostgreSQL URL (catalog + Dagster).")
    dagster_database_url: str | None = Field(
        None, description="PostgreSQL URL for Dagster's storage; defaults to database_url."
    )
    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers.")
    qdrant_url: str | None = Field(None, description="Qdrant REST URL.")
    qdrant_api_key: str | None = Field(None, description="Qdrant API key, if the server needs one.")
    redis_url: str | None = Field(None, description="Redis URL (search cache, rate limits).")
    blob_root: Path | None = Field(None, description="Directory for image bytes.")
    admin_key: str | None = Field(None, description="Key for /api/v1/admin endpoints.")
    model: str = Field("efficientnet_lite0", description="Model registry entry to embed with.")
    public_url: str = Field("http://127.0.0.1:8000", description="Where the search API answers.")
    requeue_after_seconds: float = Field(
        900.0,
        description="An image queued or processing for this long gets its upload event again.",
    )
    api_workers: int = Field(
        0, ge=0, description="Search API worker processes; 0 = one per CPU, at most 4."
    )
    upload_concurrency: int = Field(
        1,
        ge=1,
        description=(
            "Uploads one API process validates and stores at once; the rest wait their turn. "
            "More threads only contend for the interpreter; raise it when the database is far."
        ),
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, gt=0, description="Largest image the API accepts (uploads and queries)."
    )

    def resolved_api_workers(self) -> int:
        """`api_workers`, or one per CPU this process may run on (at most 4)."""
        if self.api_workers:
            return self.api_workers
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(4, cpus or 1))

    def resolved_blob_root(self) -> Path:
        return (self.blob_root or self.home / "blobs").resolve()

    def require(self, name: str) -> str:
        """The value of a URL setting that a running service cannot do without."""
        value = getattr(self, name)
        if not value:
            raise RuntimeError(
                f"DEEPLENS_{name.upper()} is not set: start the system with `deeplens up`, "
                "or point the variable at a running server."
            )
        return str(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
