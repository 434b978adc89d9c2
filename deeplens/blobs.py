"""Content-addressed storage of image bytes, one key prefix per tenant: a local directory (the
default) or an S3 bucket (`deeplens.clients.blob_store` picks one from the settings).

Either store keeps the same contract, so that the API and the pipeline need not know which:
`put` returns only once the bytes are durable (a 202 that follows survives a crash); a key that
holds nothing raises `FileNotFoundError` (the bytes are gone: the image's own fault, repaired by
uploading them again); a store that can't be used raises another `OSError` (an infrastructure
fault: the upload is a 503, the run is retried).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    """What the API, the pipeline and tenancy use of a blob store (see the module's contract).
    Both stores subclass it for the keys and `put`, which they share."""

    @property
    def location(self) -> str:
        """Where the bytes are, for messages (never a secret)."""
        ...

    def key_for(self, tenant_id: str, digest: str) -> str:
        return f"{tenant_id}/{digest[:2]}/{digest}"

    def put(
        self, tenant_id: str, data: bytes, digest: str | None = None, force: bool = False
    ) -> str:
        """Store ``data`` durably and return its key.

        The same bytes again are a no-op, unless the copy there is missing or of another length
        (a partial copy), or `force` (a failed image uploaded again: its copy may be damaged):
        then it is written again, which is how a re-upload repairs it. Raises `OSError` (disk
        full, store unavailable) with nothing left behind.
        """
        key = self.key_for(tenant_id, digest or sha256_hex(data))
        self.put_at(key, data, force)
        return key

    def put_at(self, key: str, data: bytes, force: bool = False) -> None:
        """Store `data` under `key` as `put` does (derived files: thumbnails)."""
        ...

    def available(self) -> bool:
        """Whether the store can be reached (a missing key is then really missing)."""
        ...

    def get(self, key: str) -> bytes: ...

    def missing(self, keys: Collection[str]) -> set[str]:
        """Those of `keys` that hold nothing."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`'s bytes, if there are any."""
        ...

    def delete_tenant(self, tenant_id: str) -> None: ...


class LocalBlobStore(BlobStore):
    """Files under a local (or shared) directory. `put` returns once the bytes and their
    directory entry are on disk (fsync); a file is written beside its place and renamed, so
    that a reader never sees a partial copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved = root.resolve()  # once: resolving walks every component (a syscall each)

    @property
    def location(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        path = Path(os.path.normpath(self._resolved / key))
        if self._resolved not in path.parents:
            raise ValueError(f"blob key {key!r} escapes the blob root")
        return path

    def put_at(self, key: str, data: bytes, force: bool = False) -> None:
        path = self.path(key)
        try:
            if not force and path.stat().st_size == len(data):
                return
        except FileNotFoundError:
            pass
        _make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def available(self) -> bool:
        return self._resolved.is_dir()

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def missing(self, keys: Collection[str]) -> set[str]:
        return {key for key in keys if not self.path(key).exists()}

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_tenant(self, tenant_id: str) -> None:
        shutil.rmtree(self.root / tenant_id, ignore_errors=True)


def _make_dirs(folder: Path) -> None:
    """`mkdir -p`, each new directory's entry made durable in its parent."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    _fsync_dir(folder.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Keys looked up at once by `S3BlobStore.missing`: one after the other, a tenant's rebuild
# would wait a round trip per image.
_PARALLEL_LOOKUPS = 8


class S3BlobStore(BlobStore):
    """Objects of an S3 bucket (AWS S3 or an S3-compatible store), each key under `prefix`.

    S3 answers a PutObject only once the object is stored durably, so its acknowledgement is
    this store's fsync. An object is written whole or not at all: a copy is never partial, only
    missing. `client` is boto3's (`deeplens.clients.s3_client`, with its timeouts and retries).
    """

    def __init__(
        self, client: S3Client, bucket: str, prefix: str = "", page_size: int = 1000
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._page_size = page_size  # S3 lists and deletes at most 1000 keys a request

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def put_at(self, key: str, data: bytes, force: bool = False) -> None:
        name = self.prefix + key
        if not force and self._size(name) == len(data):
            return
        with _s3_errors("PutObject", name):
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def available(self) -> bool:
        try:
            with _s3_errors("HeadBucket", self.bucket):
                self._client.head_bucket(Bucket=self.bucket)
        except OSError:
            return False
        return True

    def get(self, key: str) -> bytes:
        name = self.prefix + key
        with _s3_errors("GetObject", name):
            return self._client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def missing(self, keys: Collection[str]) -> set[str]:
        if not keys:
            return set()
        with ThreadPoolExecutor(min(_PARALLEL_LOOKUPS, len(keys))) as pool:
            sizes = pool.map(lambda key: self._size(self.prefix + key), keys)
            return {key for key, size in zip(keys, sizes, strict=True) if size is None}

    def delete(self, key: str) -> None:
        name = self.prefix + key
        with _s3_errors("DeleteObject", name):
            self._client.delete_object(Bucket=self.bucket, Key=name)

    def delete_tenant(self, tenant_id: str) -> None:
        """Delete every object under the tenant's prefix, one listed page at a time."""
        folder = f"{self.prefix}{tenant_id}/"
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=folder, PaginationConfig={"PageSize": self._page_size}
        )
        with _s3_errors("DeleteObjects", folder):
            for page in pages:
                objects: list[ObjectIdentifierTypeDef] = [
                    {"Key": o["Key"]} for o in page.get("Contents", []) if "Key" in o
                ]
                if not objects:
                    continue
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                if errors := answer.get("Errors", []):
                    raise OSError(
                        errno.EIO,
                        f"S3 DeleteObjects under {folder} kept {len(errors)} object(s): "
                        f"{errors[0].get('Code')}",
                    )

    def _size(self, name: str) -> int | None:
        """The length of the object `name`, or None when there is none."""
        try:
            with _s3_errors("HeadObject", name):
                return self._client.head_object(Bucket=self.bucket, Key=name)["ContentLength"]
        except FileNotFoundError:
            return None


# What S3 answers for a key that holds nothing (a HEAD's answer has no body: only its status).
_GONE = {"NoSuchKey", "NotFound", "404"}


@contextmanager
def _s3_errors(operation: str, name: str) -> Iterator[None]:
    """botocore's errors as the store's contract has them: `FileNotFoundError` for a key that
    holds nothing, an `OSError` for anything else (no connection, a timeout, a 5xx once the
    client's retries are spent, refused credentials, no such bucket). The message names the
    operation and the error, never the endpoint or a credential."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "unknown"))
        if code in _GONE:
            raise FileNotFoundError(errno.ENOENT, f"no object {name}") from exc
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        raise OSError(errno.EIO, f"S3 {operation} of {name} failed: {code} ({status})") from exc
    except BotoCoreError as exc:
        raise OSError(errno.EIO, f"S3 {operation} of {name} failed: {type(exc).__name__}") from exc
