"""Every setting of every DeepLens process, read from ``DEEPLENS_*`` environment variables.

This is the one list: the API, the Dagster code location and its run workers, the relay and the
CLI all build a ``Settings`` when they need one (nothing is read at import time) and hand it to
the factories in `deeplens.clients`, so a setting can't reach one runtime and miss the other.
``deeplens up`` fills in the URLs of the embedded servers it starts, so its child processes
always see a complete configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "DEEPLENS_"

KafkaSecurity = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSasl = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    # -- where things are -------------------------------------------------------------------
    home: Path = Field(Path(".deeplens"), description="Where the local stack keeps its data.")
    database_url: str | None = Field(None, description="PostgreSQL URL (catalog + Dagster).")
    dagster_database_url: str | None = Field(
        None, description="PostgreSQL URL for Dagster's storage; defaults to database_url."
    )
    database_pool_size: int = Field(
        20, ge=1, description="Catalog connections one API process keeps at most."
    )
    database_statement_timeout_ms: int = Field(
        5000,
        ge=0,
        description=(
            "Longest a catalog statement of the API may run before the server cancels it (the "
            "request gets a 503); 0 = no limit. Migrations and pipeline runs are not bounded."
        ),
    )
    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers.")
    kafka_security_protocol: KafkaSecurity = Field(
        "PLAINTEXT", description="How Kafka clients connect (managed clusters: SASL_SSL)."
    )
    kafka_sasl_mechanism: KafkaSasl | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_ca_location: str | None = Field(
        None, description="CA bundle that signs the brokers' certificates (default: system's)."
    )
    kafka_ssl_certificate_location: str | None = Field(
        None, description="Client certificate for mutual TLS."
    )
    kafka_ssl_key_location: str | None = Field(None, description="Client key for mutual TLS.")
    kafka_topic_partitions: int = Field(
        6, ge=1, description="Partitions of deeplens.images.uploaded when `migrate` creates it."
    )
    kafka_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics `migrate` creates."
    )
    qdrant_url: str | None = Field(None, description="Qdrant REST URL.")
    qdrant_api_key: SecretStr | None = Field(
        None, description="Qdrant API key, if the server needs one."
    )
    qdrant_timeout: int = Field(60, ge=1, description="Seconds a Qdrant request may take.")
    redis_url: str | None = Field(None, description="Redis URL (search cache, rate limits).")
    redis_timeout: float = Field(
        0.1,
        gt=0,
        description=(
            "Seconds a Redis call may take before it is given up. Redis is optional (cache, rate "
            "limits): after a failure the API leaves it alone for `redis_retry_seconds`."
        ),
    )
    redis_retry_seconds: float = Field(
        5.0, gt=0, description="How long the API goes without Redis after a Redis call failed."
    )
    blob_root: Path | None = Field(
        None, description="Directory for image bytes (default: HOME/blobs)."
    )
    blob_store: Literal["local", "s3"] = Field(
        "local",
        description=(
            "Where image bytes are kept: `local`, the directory `blob_root`; `s3`, the bucket "
            "`s3_bucket` of AWS S3 or of an S3-compatible store at `s3_endpoint_url`."
        ),
    )
    s3_bucket: str | None = Field(None, description="The bucket of the image bytes (s3 store).")
    s3_prefix: str = Field(
        "", description="Prefix of every key in the bucket, so that systems can share one."
    )
    s3_endpoint_url: str | None = Field(
        None,
        description=(
            "URL of an S3-compatible store (MinIO, Ceph...), whose buckets are addressed by "
            "path; unset: AWS S3."
        ),
    )
    s3_region: str | None = Field(
        None, description="The bucket's region (default: boto3's, e.g. AWS_REGION)."
    )
    s3_access_key_id: SecretStr | None = Field(
        None,
        description=(
            "Access key of the S3 store, with `s3_secret_access_key`; unset: boto3's own "
            "credentials (AWS_* variables, its config files, IRSA on Kubernetes, an instance role)."
        ),
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret of `s3_access_key_id`."
    )
    s3_timeout: float = Field(
        10.0,
        gt=0,
        description=(
            "Seconds an S3 request may wait to connect, or for an answer; a request that fails "
            "so (or with a 5xx) is tried 3 times in all before the store counts as unavailable."
        ),
    )

    # -- the model --------------------------------------------------------------------------
    model: str = Field("efficientnet_lite0", description="Model registry entry to embed with.")
    models_file: Path | None = Field(
        None, description="A TOML or JSON file of extra model entries (see the model README)."
    )

    # -- the API ----------------------------------------------------------------------------
    admin_key: SecretStr | None = Field(None, description="Key for /api/v1/admin endpoints.")
    public_url: str = Field("http://127.0.0.1:8000", description="Where the search API answers.")
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
    query_decode_budget_mb: int = Field(
        128,
        gt=0,
        description=(
            "Memory one query image may take to decode in the API; a larger one is refused (413) "
            "before any pixel is decoded."
        ),
    )
    query_models: int = Field(
        3,
        ge=1,
        description="Models an API process holds for query images at most (the default and the "
        "ones tenants search with; each ONNX session takes 60-90 MB).",
    )
    query_concurrency: int = Field(
        2,
        ge=1,
        description=(
            "Query images one API process decodes and embeds at once; the rest wait their turn. "
            "With the decode budget it bounds the memory searches take."
        ),
    )

    # -- the API: limits (each tenant's own are set by the admin API) ------------------------
    # 0 means no limit.
    default_uploads_per_second: int = Field(
        50, ge=0, description="Uploads per second a new tenant may send (all its keys together)."
    )
    default_searches_per_second: int = Field(
        20, ge=0, description="Searches per second a new tenant may send."
    )
    default_reads_per_second: int = Field(
        200,
        ge=0,
        description="Other requests per second a new tenant may send (status, listing, delete...).",
    )
    default_max_images: int = Field(1_000_000, ge=0, description="Images a new tenant may store.")
    default_max_bytes: int = Field(
        100 * 1024**3, ge=0, description="Bytes of images a new tenant may store."
    )
    rate_limit_pause_seconds: float = Field(
        1.0,
        ge=0,
        description=(
            "How long a 429 waits before it is sent (at most until the client's window resets), "
            "so that a client flooding in a loop is paced instead of answered at once."
        ),
    )
    key_failures_per_second: int = Field(
        20,
        ge=1,
        description=(
            "Unknown API keys one client address may send per second; beyond, its requests get "
            "429 without a key lookup until the second is over."
        ),
    )
    websockets_per_key: int = Field(
        16,
        ge=1,
        description=(
            "Status WebSockets one API key may hold open at once, per API process (a key can "
            "hold this many in each worker process); more are closed with code 4429."
        ),
    )
    relay_in_api: bool = Field(
        True,
        description=(
            "Run the outbox relay inside each API process (one leads at a time). Turn off where "
            "`deeplens relay` runs on its own."
        ),
    )

    # -- the pipeline: healing ----------------------------------------------------------------
    retry_budget_seconds: float = Field(
        1800.0,
        gt=0,
        description=(
            "How long an image is retried after infrastructure faults (a dependency down, a run "
            "worker lost) before it ends `failed`; it stays retryable by its owner."
        ),
    )
    retry_backoff_seconds: float = Field(
        5.0, gt=0, description="Wait before the first retry; it doubles with each attempt."
    )
    retry_backoff_max_seconds: float = Field(
        120.0, gt=0, description="The longest wait between two retries."
    )
    stuck_after_seconds: float = Field(
        300.0,
        gt=0,
        description=(
            "An image accepted but not taken up by a run for this long (its event lost, say) is "
            "re-driven by the reconciler."
        ),
    )
    freshness_minutes: float = Field(
        5.0,
        gt=0,
        description=(
            "Uploads should be searchable within this long: a tenant with an image waiting "
            "longer fails its `uploads_searchable_in_time` check in the Dagster UI."
        ),
    )
    run_heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a run worker says it is alive."
    )
    run_dead_after_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "A run whose worker has not said it is alive for this long (killed, hung, lost with "
            "its node) is failed by the reconciler and its images retried."
        ),
    )
    collection_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="How long a reindex keeps the collection it replaced (for a rollback).",
    )
    decode_budget_mb: int = Field(
        256,
        gt=0,
        description=(
            "Memory one image may take to decode in a run worker; a larger image fails alone "
            "(its batch goes on) instead of taking the worker down."
        ),
    )

    # -- the pipeline: scale ------------------------------------------------------------------
    max_concurrent_runs: int = Field(
        2,
        ge=1,
        description=(
            "Runs Dagster starts at once (the run coordinator of dagster.yaml and of the Helm "
            "values reads this variable), and ingest runs the upload sensor keeps queued or "
            "running: beyond it, uploads wait on Kafka and join the next, larger batch. A run "
            "takes about a core and 1 GiB; on two cores, more only fight over them."
        ),
    )
    max_batch: int = Field(
        2000,
        ge=1,
        description=(
            "Images in one ingest run at most (upload batches and retries). Each run costs a "
            "process start (about 1.5 CPU-s of imports), so a bulk upload should make few runs; "
            "the run config carries the ids (about 110 KB per 1,000)."
        ),
    )

    # -- logs -------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the API, the relay and the CLI's own messages."
    )
    dagster_ui_url: str | None = Field(
        None,
        description="The Dagster UI's base URL, for the run links of lineage answers "
        "(`deeplens up` sets it; null: no links).",
    )
    dagster_logs: Path | None = Field(
        None, description="Where Dagster keeps compute logs (the instance's compute_logs)."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description=(
            "Log lines of the API, the relay and the CLI: text, or one JSON object per line "
            "with the trace, span and correlation ids."
        ),
    )

    # -- traces and metrics -----------------------------------------------------------------
    otel_exporter: Literal["none", "otlp", "console", "file"] = Field(
        "none",
        description=(
            "Where OpenTelemetry spans go: nowhere (a no-op tracer), an OTLP collector "
            "(`otel_endpoint`, or the standard OTEL_EXPORTER_OTLP_* variables), standard "
            "output, or JSON lines in `otel_file`. Every process of the system reads it."
        ),
    )
    otel_endpoint: str | None = Field(
        None,
        description=(
            "OTLP endpoint, e.g. http://collector:4317 (gRPC) or http://collector:4318/v1/traces "
            "with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf."
        ),
    )
    otel_file: Path | None = Field(
        None, description="The JSON-lines file of the `file` exporter (default: HOME/traces.jsonl)."
    )
    metrics_require_admin_key: bool = Field(
        False,
        description=(
            "Answer /metrics only with the admin key (X-Admin-Key, or Authorization: Bearer); "
            "otherwise anyone who reaches the port may scrape it."
        ),
    )
    metrics_window_seconds: float = Field(
        900.0,
        gt=0,
        description=(
            "The recent past that /metrics' pipeline figures cover (upload to searchable, run "
            "outcomes), read from the catalog when scraped."
        ),
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """The settings that `environ` (not this process's own environment) gives: what a child
        process started with `environ` will read."""
        values = {k[len(PREFIX) :].lower(): v for k, v in environ.items() if k.startswith(PREFIX)}
        given = {k: v for k, v in values.items() if v and k in cls.model_fields}
        return _FromMapping.model_validate(given)

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
                f"{PREFIX}{name.upper()} is not set: start the system with `deeplens up`, "
                "or point the variable at a running server."
            )
        return str(value)

    def secret(self, name: str) -> str | None:
        """A secret setting's value (or None), for the factory that needs it in clear."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value


def env_name(field: str) -> str:
    """The environment variable of a setting: ``qdrant_api_key`` → ``DEEPLENS_QDRANT_API_KEY``."""
    return PREFIX + field.upper()


class _FromMapping(Settings):
    """`Settings` from its arguments alone (see `Settings.from_environ`)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
