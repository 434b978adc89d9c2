from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg_pool import ConnectionPool
from pydantic import Field, PrivateAttr

from deeplens import clients
from deeplens.heartbeat import Heartbeat
from deeplens_dagster.resources.settings import SettingsResource


class CatalogResource(SettingsResource):
    """The PostgreSQL catalog (tenants, images, outbox, embeddings) through a small pool
    (``DEEPLENS_DATABASE_URL``). In a run, it also beats the run's heartbeat, by which the
    reconciler tells a live run worker from a dead or hung one."""

    max_connections: int = Field(default=4, description="Pool size for one run or sensor tick.")

    _pool: ConnectionPool | None = PrivateAttr(default=None)

    _active: bool = PrivateAttr(default=False)
    _heartbeat: Heartbeat | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._active = True  # the pool opens on first use: most sensor ticks need no database
        run = context.run
        if run is not None:
            self._heartbeat = Heartbeat(
                self.settings.require("database_url"),
                run.run_id,
                run.tags.get("dagster/partition"),
                self.settings.run_heartbeat_seconds,
            ).start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._active = False
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        if not self._active:
            raise RuntimeError("CatalogResource used outside of a run or sensor")
        if self._pool is None:
            self._pool = clients.postgres_pool(
                self.settings, "deeplens-dagster", max_size=self.max_connections
            )
        with self._pool.connection() as conn:
            yield conn
