"""The blob stores under test: a local directory, and a bucket on moto's S3-protocol server
(started once per session as `deeplens up` starts it). Each test gets a root or bucket of its
own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplens import clients
from deeplens.blobs import BlobStore, LocalBlobStore
from deeplens.settings import Settings
from deeplens_local.stack.servers import embedded_s3_environ, start_s3
from deeplens_local.stack.wait import free_port


@pytest.fixture(scope="session")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    started = start_s3(free_port(), tmp_path_factory.mktemp("s3-logs"))
    try:
        yield started.url
    finally:
        started.process.stop()


@pytest.fixture
def s3_settings(s3_url: str) -> Settings:
    """Settings of the S3 store naming a new, empty bucket."""
    bucket = f"blobs-{uuid.uuid4().hex[:12]}"
    settings = Settings.from_environ(
        {**embedded_s3_environ(s3_url), "DEEPLENS_BLOB_STORE": "s3", "DEEPLENS_S3_BUCKET": bucket}
    )
    clients.s3_client(settings).create_bucket(Bucket=bucket)
    return settings


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each implementation in turn, as `clients.blob_store` builds it."""
    if request.param == "local":
        return LocalBlobStore(tmp_path)
    return clients.blob_store(request.getfixturevalue("s3_settings"))
