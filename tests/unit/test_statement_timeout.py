"""The API's catalog statements are bounded, and a statement cut by the bound is a 503 with
``Retry-After``; the pools of migrations and runs are not bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from deeplens import clients
from deeplens.settings import Settings
from search_api.main import create_app

URL = "postgresql://api@db.invalid:5432/catalog"


def test_the_timeout_goes_into_the_connection_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGOPTIONS", raising=False)
    assert clients.postgres_options(URL, 5000) == "-c statement_timeout=5000"


def test_options_the_url_gives_are_kept() -> None:
    url = URL + "?options=-c%20search_path%3Dcatalog"
    assert clients.postgres_options(url, 250) == "-c search_path=catalog -c statement_timeout=250"


def test_options_from_the_environment_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=64MB")
    assert clients.postgres_options(URL, 10) == "-c work_mem=64MB -c statement_timeout=10"


@pytest.mark.parametrize(
    ("bounded", "options"), [(True, "-c statement_timeout=1234"), (False, None)]
)
def test_only_a_pool_that_asks_is_bounded(
    monkeypatch: pytest.MonkeyPatch, bounded: bool, options: str | None
) -> None:
    made: dict[str, Any] = {}
    monkeypatch.setattr("psycopg_pool.ConnectionPool", lambda url, **kwargs: made.update(kwargs))
    settings = Settings(database_url=URL, database_statement_timeout_ms=1234)
    clients.postgres_pool(settings, "test", statement_timeout=bounded)
    assert made["kwargs"].get("options") == options
    assert made["kwargs"]["autocommit"] is True
    assert made["kwargs"]["fallback_application_name"] == "test"


def test_a_cancelled_statement_is_503_with_retry_after(tmp_path: Path) -> None:
    app = create_app(Settings(blob_root=tmp_path))

    def cancelled() -> None:
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    @app.get("/slow", dependencies=[Depends(cancelled)])
    def slow() -> None:
        return None

    response = TestClient(app).get("/slow")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "too slow" in response.json()["detail"]
    assert "statement timeout" not in response.json()["detail"]
