"""The whole system on one machine: the four servers (five with an S3 blob store), Dagster's
daemon and webserver, the API.

``deeplens up`` and the tests' session fixture both run this code. A server whose
``DEEPLENS_*`` variable is set is used as it is (after checking that it answers); otherwise its
embedded default is started under ``home``. Stopping stops every process this stack started and
keeps the data for the next start.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from deeplens import bootstrap
from deeplens.settings import Settings
from deeplens_local.stack import apps, servers
from deeplens_local.stack.instance import INSTANCE, WORKSPACE, project_file
from deeplens_local.stack.process import ManagedProcess, kill_group
from deeplens_local.stack.wait import free_port, port_in_use

log = logging.getLogger(__name__)


class AlreadyRunning(RuntimeError):
    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(f"DeepLens is already running (pid {state.get('pid')})")
        self.state = state


@dataclass
class StackConfig:
    home: Path = Path(".deeplens")
    ui_port: int = 3000
    api_port: int = 8000
    postgres_port: int = 15432
    kafka_port: int = 19092
    qdrant_port: int = 16333
    redis_port: int = 16379
    s3_port: int = 19000
    with_apps: bool = True
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def on_free_ports(cls, home: Path, environ: dict[str, str] | None = None) -> StackConfig:
        """A stack beside any other: every port picked free by the OS (tests, the bench)."""
        return cls(
            home=home,
            ui_port=0,
            api_port=0,
            postgres_port=0,
            kafka_port=0,
            qdrant_port=0,
            redis_port=0,
            s3_port=0,
            environ=dict(os.environ) if environ is None else environ,
        )


@dataclass
class Endpoint:
    name: str
    url: str
    embedded: bool


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.home = config.home.resolve()
        self.logs = self.home / "logs"
        self.settings = Settings.from_environ(config.environ)
        self.endpoints: dict[str, Endpoint] = {}
        self.processes: list[ManagedProcess] = []
        self.env: dict[str, str] = {}
        self.qdrant_api_key: str | None = None
        self._lock_file: IO[str] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Stack:
        self.home.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._start_servers()
            self._bootstrap()
            if self.config.with_apps:
                self._start_apps()
            self._write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        self.state_path.unlink(missing_ok=True)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_alive(self) -> None:
        for proc in self.processes:
            proc.check_alive()

    def process(self, name: str) -> ManagedProcess:
        """One of the stack's processes by name (`postgres`, `kafka`, `qdrant`, `redis`, `s3`,
        `dagster-daemon`, `dagster-webserver`, `search-api`)."""
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise KeyError(f"the stack runs no {name!r}")

    def restart(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one process (`sig`: SIGKILL for a crash) and start it again where it was, as an
        operator or a supervisor would; returns once it answers again (for the fault tests).

        The embedded broker comes back empty, with a new cluster id, as after a restart of
        `deeplens up`; its topics are created again.
        """
        proc = self.process(name)
        if name == "kafka":
            proc.stop(sig=sig)
            port = int(self.endpoints["kafka"].url.rsplit(":", 1)[1])
            started = servers.start_kafka(port, self.logs)
            self.processes[self.processes.index(proc)] = started.process
            bootstrap.migrate(self.child_settings())
            return
        proc.restart(sig=sig)
        if name == "search-api":
            apps.wait_for_api(self.endpoints["api"].url, proc)
        elif name == "qdrant":
            servers.check_qdrant(self.endpoints["qdrant"].url)

    # -- pieces ----------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.home / "run" / "stack.json"

    def _acquire_lock(self) -> None:
        run_dir = self.home / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(run_dir / "up.lock", "a+")  # noqa: SIM115 - held for the stack's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise AlreadyRunning(read_state(self.home) or {}) from None
        self._lock_file = lock
        # A stack that was killed (not stopped) may have left children behind.
        leftover = read_state(self.home)
        if leftover:
            log.warning("cleaning up processes of a stack that did not stop cleanly")
            for pid in leftover.get("children", {}).values():
                kill_group(int(pid))
            self.state_path.unlink(missing_ok=True)

    def _port(self, name: str, wanted: int) -> int:
        if wanted == 0:
            return free_port()
        if port_in_use(wanted):
            raise RuntimeError(
                f"port {wanted} for {name} is already in use; choose another with "
                f"--{name}-port (or stop whatever listens there)"
            )
        return wanted

    def _start_servers(self) -> None:
        s, c, logs = self.settings, self.config, self.logs
        if s.database_url:
            servers.check_postgres(s.database_url)
            self.endpoints["postgres"] = Endpoint("PostgreSQL", s.database_url, False)
        else:
            started = servers.start_postgres(
                self.home / "postgres", self._port("postgres", c.postgres_port), logs
            )
            self._add("postgres", "PostgreSQL", started)
        if s.kafka_bootstrap:
            servers.check_kafka(s)
            self.endpoints["kafka"] = Endpoint("Kafka", s.kafka_bootstrap, False)
        else:
            started = servers.start_kafka(self._port("kafka", c.kafka_port), logs)
            self._add("kafka", "Kafka (Tansu, in memory)", started)
        if s.qdrant_url:
            servers.check_qdrant(s.qdrant_url)
            self.endpoints["qdrant"] = Endpoint("Qdrant", s.qdrant_url, False)
        else:
            # The local Qdrant requires a key, as a production one should: every client (the
            # API's, the code location's, the run workers') must get it from the settings.
            key_file = self._secret_file("qdrant_api_key")
            self.qdrant_api_key = key_file.read_text().strip()
            started = servers.start_qdrant(
                self.home / "qdrant", self._port("qdrant", c.qdrant_port), logs, key_file
            )
            self._add("qdrant", "Qdrant (local, qdrant-edge)", started)
        if s.redis_url:
            servers.check_redis(s.redis_url)
            self.endpoints["redis"] = Endpoint("Redis", s.redis_url, False)
        else:
            started = servers.start_redis(
                self.home / "redis", self._port("redis", c.redis_port), logs
            )
            self._add("redis", "Redis", started)
        if s.blob_store == "s3":
            self._start_s3()

    def _start_s3(self) -> None:
        """The S3 blob store: the bucket the settings name, or else an embedded S3-protocol
        server with a bucket of its own (moto, in memory: its objects are gone when it stops,
        so it is for trying the S3 path, not for keeping images)."""
        s = self.settings
        if s.s3_bucket or s.s3_endpoint_url:
            servers.check_s3(s)
            where = s.s3_endpoint_url or f"s3://{s.s3_bucket}"
            self.endpoints["s3"] = Endpoint("S3", where, False)
        else:
            started = servers.start_s3(self._port("s3", self.config.s3_port), self.logs)
            self._add("s3", "S3 (moto, in memory)", started)

    def _add(self, key: str, label: str, started: servers.Started) -> None:
        self.processes.append(started.process)
        self.endpoints[key] = Endpoint(label, started.url, True)

    def _bootstrap(self) -> None:
        blob_root = self.settings.blob_root or self.home / "blobs"
        blob_root.mkdir(parents=True, exist_ok=True)
        admin_key = self.settings.secret("admin_key") or self._secret_file("admin_key").read_text()
        dagster_home = self.home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project_file(INSTANCE), dagster_home / INSTANCE)
        shutil.copyfile(project_file(WORKSPACE), dagster_home / WORKSPACE)
        env = dict(self.config.environ)
        env.update(
            {
                "DEEPLENS_HOME": str(self.home),
                "DEEPLENS_DATABASE_URL": self.endpoints["postgres"].url,
                "DEEPLENS_DAGSTER_DATABASE_URL": self.settings.dagster_database_url
                or self.endpoints["postgres"].url,
                "DEEPLENS_KAFKA_BOOTSTRAP": self.endpoints["kafka"].url,
                "DEEPLENS_QDRANT_URL": self.endpoints["qdrant"].url,
                "DEEPLENS_REDIS_URL": self.endpoints["redis"].url,
                "DEEPLENS_BLOB_ROOT": str(blob_root.resolve()),
                "DEEPLENS_ADMIN_KEY": admin_key.strip(),
                "DAGSTER_HOME": str(dagster_home),
                "DEEPLENS_DAGSTER_LOGS": str(self.home / "dagster" / "logs"),
                # dagster.yaml's run coordinator reads it; every process loading the instance
                # needs it set, the default included.
                "DEEPLENS_MAX_CONCURRENT_RUNS": str(self.settings.max_concurrent_runs),
            }
        )
        if self.qdrant_api_key:
            env["DEEPLENS_QDRANT_API_KEY"] = self.qdrant_api_key
        if "s3" in self.endpoints and self.endpoints["s3"].embedded:
            env.update(servers.embedded_s3_environ(self.endpoints["s3"].url))
        self.env = env
        # The embedded broker starts empty: the events of unfinished images are sent again.
        redrive = 0.0 if self.endpoints["kafka"].embedded else None
        bootstrap.migrate(self.child_settings(), redrive_idle_seconds=redrive)

    def child_settings(self) -> Settings:
        """The settings every process of this stack runs with."""
        return Settings.from_environ(self.env)

    def _secret_file(self, name: str) -> Path:
        """A random secret kept under `home` (readable by its owner only), made once."""
        path = self.home / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path

    def _start_apps(self) -> None:
        c = self.config
        ui_port = self._port("ui", c.ui_port)
        api_port = self._port("api", c.api_port)
        api_url = f"http://{servers.HOST}:{api_port}"
        self.env["DEEPLENS_PUBLIC_URL"] = api_url
        workspace = self.home / "dagster" / WORKSPACE
        self.processes.append(apps.start_daemon(self.env, workspace, self.logs, self.home))
        self.env["DEEPLENS_DAGSTER_UI_URL"] = f"http://{servers.HOST}:{ui_port}"
        webserver, ui_url = apps.start_webserver(self.env, workspace, ui_port, self.logs, self.home)
        self.processes.append(webserver)
        workers = self.settings.resolved_api_workers()
        self.processes.append(
            apps.start_api(self.env, api_port, self.logs, self.home, workers=workers)
        )
        apps.wait_for_api(api_url, self.processes[-1])
        apps.wait_for_code_location(ui_url, webserver)
        self.endpoints["ui"] = Endpoint("Dagster UI", ui_url, True)
        self.endpoints["api"] = Endpoint("Search API", api_url, True)

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "endpoints": {k: e.url for k, e in self.endpoints.items()},
            "children": {p.name: p.pid for p in self.processes},
            "admin_key_file": str(self.home / "admin_key"),
            "python": sys.executable,
        }
        self.state_path.write_text(json.dumps(state, indent=2))


def stack_running(home: Path) -> bool:
    """Whether a stack holds the lock of ``home`` (it releases it when it has stopped)."""
    lock_path = home.resolve() / "run" / "up.lock"
    if not lock_path.exists():
        return False
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def read_state(home: Path) -> dict[str, Any] | None:
    path = home.resolve() / "run" / "stack.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
