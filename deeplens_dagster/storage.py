"""Dagster's PostgreSQL storage, with its connections kept open between operations.

Speed exception (a storage subclass over library internals; see the style notes):
- Buys: idle, about 20 new PostgreSQL sessions a second became about 5 per 30 s; during a
  reindex, PostgreSQL's CPU went from 0.8-0.9 to 0.6 CPU-s (measured with the bench).
- Why not the public API: dagster-postgres has no pool settings in `dagster.yaml` (only the
  webserver's CLI flags) and no way to cache its schema checks.
- Upstream: dagster-io/dagster#33935 (pool settings in the storage config, PR #33936), #20325
  (many short-lived connections), #34153 (`supports_asset_checks` asks on every call).
- To remove: once the storage config takes pool settings, point `dagster.yaml` back at
  `storage: postgres:` with them, and delete this module.

dagster-postgres opens a new connection for every storage operation (SQLAlchemy's NullPool),
except in the webserver, and a code server builds a new instance for every sensor tick, which
first checks that the tables exist: on the local stack that was about 20 new PostgreSQL sessions
a second while idle (a TCP connect, authentication and a server process each), a tenth of a
core. `PooledPostgresStorage` (named by `dagster.yaml`) takes the same settings as
`storage: postgres:`; every instance of it in a process shares one small pool per database, and
only the first checks the tables. Run workers rebuild their instance from its reference, so they
get it too. The pools are per process: a forked child starts without them.

The storages also ask the database's catalog, on hot paths (every run record query, run event
and sensor tick), whether a table or a column of a past schema migration exists: SQLAlchemy
reflection, several catalog queries each time. A "yes" never changes (migrations only add), so
each process remembers it; a "no" is asked again, since `dagster instance migrate` may run.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from sqlalchemy.engine import Engine

POOL_SIZE = 3  # connections kept open per database and process (the daemon has several loops)
MAX_OVERFLOW = 8  # more under load, closed when returned
POOL_RECYCLE_SECONDS = 3600

_engines: dict[str, Engine] = {}
_checked: set[str] = set()  # databases whose tables this process has checked
_present: set[tuple[str, str, tuple[Any, ...]]] = set()  # schema checks answered "yes"
_lock = threading.Lock()

# Schema checks of each storage (run, event log, schedule) that reflect on the catalog.
SCHEMA_CHECKS = {
    "_run_storage": (
        "has_run_stats_index_cols",
        "has_bulk_actions_selector_cols",
        "has_backfill_id_column",
        "has_bulk_action_job_name_column",
        "has_backfill_tags_table",
    ),
    "_event_log_storage": ("has_table",),
    "_schedule_storage": ("has_instigators_table", "has_secondary_index_table"),
}


def _forget_after_fork() -> None:
    _engines.clear()
    _checked.clear()
    _present.clear()


def remember_yes(postgres_url: str, check: Callable[..., bool]) -> Callable[..., bool]:
    """`check`, whose "yes" this process keeps (a table or column that exists stays)."""

    @functools.wraps(check)
    def cached(*args: Any) -> bool:
        key = (postgres_url, check.__name__, args)
        if key in _present:
            return True
        found = bool(check(*args))
        if found:
            _present.add(key)
        return found

    return cached


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def shared_engine(postgres_url: str) -> Engine:
    """This process's pooled engine for `postgres_url`."""
    with _lock:
        engine = _engines.get(postgres_url)
        if engine is None:
            engine = create_pg_engine(
                postgres_url,
                isolation_level="AUTOCOMMIT",
                pool_size=POOL_SIZE,
                max_overflow=MAX_OVERFLOW,
                pool_recycle=POOL_RECYCLE_SECONDS,
                pool_pre_ping=True,
            )
            _engines[postgres_url] = engine
        return engine


class PooledPostgresStorage(DagsterPostgresStorage):
    """`storage: postgres:` whose run, event log and schedule storages share a pooled engine."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        check_tables = should_autocreate_tables and postgres_url not in _checked
        super().__init__(postgres_url, check_tables, inst_data, token_provider)
        _checked.add(postgres_url)
        for attribute, checks in SCHEMA_CHECKS.items():
            storage = getattr(self, attribute)
            for name in checks:
                setattr(storage, name, remember_yes(postgres_url, getattr(storage, name)))
        if token_provider is not None:
            return  # tokens are injected per connection: keep dagster-postgres' own engines
        engine = shared_engine(postgres_url)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine.dispose()
            storage._engine = engine

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
