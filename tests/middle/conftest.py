"""The middle layer's fixtures: a real catalog (PostgreSQL), everything else faked.

The catalog is the server named by ``DEEPLENS_DATABASE_URL`` when it is set, else an embedded
PostgreSQL started once per session; either way the session gets a database of its own. Qdrant
is qdrant-client's in-memory local mode, the model is `FakeEmbedder`, Kafka is `KafkaLog`:
no Kafka, no Dagster daemon, no API and no Qdrant server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from qdrant_client import QdrantClient

from deeplens import clients
from deeplens.blobs import BlobStore
from deeplens.catalog.schema import migrate
from deeplens.settings import Settings
from deeplens_dagster.partitions import TENANTS
from deeplens_dagster.resources import BlobStoreResource, CatalogResource
from deeplens_local.stack.servers import start_postgres
from deeplens_local.stack.wait import free_port
from tests.middle import seed
from tests.middle.fakes import FakeEmbedder, FakeQdrantResource, register, unregister
from tests.middle.runs import Tenancy
from tests.middle.seed import TenantUnderTest


@pytest.fixture(scope="session")
def catalog_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated catalog database of this session's own."""
    server_url = os.environ.get("DEEPLENS_DATABASE_URL")
    started = None
    if not server_url:
        home = tmp_path_factory.mktemp("middle-postgres")
        started = start_postgres(home / "data", free_port(), home / "logs")
        server_url = started.url
    name = f"deeplens_middle_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_conninfo(server_url, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        yield url
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        if started is not None:
            started.process.stop()


@pytest.fixture
def deeplens_env(catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`DEEPLENS_*` naming the catalog and a blob root of this test: what `CatalogResource()`
    and `BlobStoreResource()` read, as they do in a run worker."""
    monkeypatch.setenv("DEEPLENS_DATABASE_URL", catalog_url)
    monkeypatch.setenv("DEEPLENS_BLOB_ROOT", str(tmp_path / "blobs"))
    return Settings()


@pytest.fixture
def conn(deeplens_env: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(deeplens_env.require("database_url"), autocommit=True) as c:
        yield c


@pytest.fixture
def blob_store(deeplens_env: Settings) -> BlobStore:
    """The blob store `BlobStoreResource()` writes and reads (built from the same settings)."""
    return clients.blob_store(deeplens_env)


@pytest.fixture
def qdrant_client() -> Iterator[QdrantClient]:
    client = QdrantClient(":memory:")
    yield client
    client.close()


@pytest.fixture
def qdrant(qdrant_client: QdrantClient) -> Iterator[FakeQdrantResource]:
    key = register(qdrant_client)
    yield FakeQdrantResource(client_key=key)
    unregister(key)


@pytest.fixture
def tenant(conn: psycopg.Connection, qdrant_client: QdrantClient) -> TenantUnderTest:
    """A new tenant: its catalog row and its collection behind the alias."""
    tenant_id = seed.new_tenant_id()
    return TenantUnderTest(tenant_id, seed.create_tenant(conn, qdrant_client, tenant_id))


@pytest.fixture
def instance(tenant: TenantUnderTest) -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance that knows the tenant's partition."""
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions(TENANTS, [tenant.tenant_id])
        yield inst


@pytest.fixture
def ingest_resources(deeplens_env: Settings, qdrant: FakeQdrantResource) -> dict[str, object]:
    """The ingest assets' resources: the real catalog and blob resources (configured from the
    environment), the fake model and the in-memory Qdrant."""
    return {
        "catalog_db": CatalogResource(),
        "blobs": BlobStoreResource(),
        "qdrant": qdrant,
        "embedder": FakeEmbedder(),
    }


@pytest.fixture
def tenancy(
    tenant: TenantUnderTest,
    conn: psycopg.Connection,
    blob_store: BlobStore,
    qdrant_client: QdrantClient,
    instance: dg.DagsterInstance,
    ingest_resources: dict[str, object],
) -> Tenancy:
    """A new tenant, ready for ingest runs of its partition."""
    return Tenancy(
        tenant.tenant_id,
        tenant.alias,
        conn,
        blob_store,
        qdrant_client,
        instance,
        ingest_resources,
    )
