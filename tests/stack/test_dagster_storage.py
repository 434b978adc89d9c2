"""Dagster's storage on the stack's PostgreSQL: pooled, and its schema checks asked once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from deeplens_dagster.storage import PooledPostgresStorage, shared_engine
from deeplens_local.stack.stack import Stack


def test_a_schema_check_that_passed_is_not_asked_again(stack: Stack) -> None:
    url = stack.env["DEEPLENS_DAGSTER_DATABASE_URL"]
    first, second = PooledPostgresStorage(url), PooledPostgresStorage(url)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = shared_engine(url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert first._run_storage.has_run_stats_index_cols()
        assert first._event_log_storage.has_table("event_logs")
        assert first._schedule_storage.has_instigators_table()
        asked = len(statements)
        assert second._run_storage.has_run_stats_index_cols()
        assert second._event_log_storage.has_table("event_logs")
        assert second._schedule_storage.has_instigators_table()
        assert len(statements) == asked, statements[asked:]
        # A "no" is asked again each time: a migration may add the table meanwhile.
        assert not first._event_log_storage.has_table("no_such_table")
        asked = len(statements)
        assert not second._event_log_storage.has_table("no_such_table")
        assert len(statements) > asked
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # The storage still works through the pooled engine.
    assert first._run_storage.get_runs_count() >= 0
