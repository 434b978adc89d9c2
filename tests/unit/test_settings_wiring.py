"""Every connection setting reaches both runtimes: the API and the Dagster code location build
their clients with the same factories, from the same `Settings`, read from ``DEEPLENS_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from deeplens import clients
from deeplens.settings import Settings, env_name
from deeplens_dagster.definitions import defs
from search_api.embedding import QueryModel
from search_api.main import create_app

# A distinctive value for every setting a client is built from.
CONNECTION = {
    "database_url": "postgresql://wiring@db.invalid:5999/catalog",
    "database_pool_size": "7",
    "kafka_bootstrap": "kafka.invalid:9093",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "wiring-user",
    "kafka_sasl_password": "wiring-password",
    "kafka_ssl_ca_location": "/etc/wiring/ca.pem",
    "kafka_ssl_certificate_location": "/etc/wiring/client.pem",
    "kafka_ssl_key_location": "/etc/wiring/client.key",
    "qdrant_url": "https://qdrant.invalid:6333",
    "qdrant_api_key": "wiring-qdrant-key",
    "qdrant_timeout": "17",
    "redis_url": "redis://redis.invalid:6390/4",
    "redis_timeout": "0.25",
}

FACTORIES = (
    "postgres_pool",
    "qdrant",
    "redis_client",
    "kafka_producer",
    "kafka_consumer",
    "kafka_admin",
    "blob_store",
)


class Stub:
    """What a recorded factory returns: accepts any call, connects nowhere."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: Stub()

    def __enter__(self) -> Stub:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Settings]]:
    for name, value in CONNECTION.items():
        monkeypatch.setenv(env_name(name), value)
    monkeypatch.setenv(env_name("blob_root"), str(tmp_path / "blobs"))
    calls: dict[str, list[Settings]] = {name: [] for name in FACTORIES}
    for name in FACTORIES:

        def record(settings: Settings, *args: Any, _name: str = name, **kwargs: Any) -> Stub:
            calls[_name].append(settings)
            return Stub()

        monkeypatch.setattr(clients, name, record)
    # Threads that would connect in the background, and the model, are not what this checks.
    monkeypatch.setattr(QueryModel, "load", lambda self, max_decode_bytes=None: self)
    monkeypatch.setattr("deeplens.hub.StatusHub.start", lambda self: None)
    monkeypatch.setattr("deeplens.relay.OutboxRelay.start", lambda self: None)
    return calls


def _assert_complete(settings: Settings, tmp_path: Path) -> None:
    for name, value in CONNECTION.items():
        got = settings.secret(name)
        assert str(got) == value, f"{env_name(name)} did not reach the client: {got!r}"
    assert settings.resolved_blob_root() == (tmp_path / "blobs").resolve()


def test_the_api_builds_every_client_from_the_settings(
    recorded: dict[str, list[Settings]], tmp_path: Path
) -> None:
    with TestClient(create_app()):
        pass
    used = {name for name, calls in recorded.items() if calls}
    assert used == {"postgres_pool", "qdrant", "redis_client", "kafka_admin", "blob_store"}
    for calls in recorded.values():
        for settings in calls:
            _assert_complete(settings, tmp_path)


def test_the_code_location_builds_every_client_from_the_settings(
    recorded: dict[str, list[Settings]], tmp_path: Path
) -> None:
    resources = {k: v for k, v in defs.resources.items() if k != "embedder"}
    with dg.build_resources(resources) as built:
        with built.catalog_db.connection():
            pass
        assert built.qdrant.client is not None
        assert built.kafka.producer is not None
        assert built.kafka.consumer() is not None
        assert built.blobs.store is not None
    used = {name for name, calls in recorded.items() if calls}
    assert used == {"postgres_pool", "qdrant", "kafka_producer", "kafka_consumer", "blob_store"}
    for calls in recorded.values():
        for settings in calls:
            _assert_complete(settings, tmp_path)


def test_kafka_clients_carry_sasl_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CONNECTION.items():
        monkeypatch.setenv(env_name(name), value)
    config = clients.kafka_config(Settings())
    assert config == {
        "bootstrap.servers": "kafka.invalid:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "wiring-user",
        "sasl.password": "wiring-password",
        "ssl.ca.location": "/etc/wiring/ca.pem",
        "ssl.certificate.location": "/etc/wiring/client.pem",
        "ssl.key.location": "/etc/wiring/client.key",
    }


def test_secrets_are_not_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CONNECTION.items():
        monkeypatch.setenv(env_name(name), value)
    shown = repr(Settings())
    assert "wiring-password" not in shown and "wiring-qdrant-key" not in shown


def test_a_child_environment_is_read_apart_from_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local stack computes its children's settings from the environment it gives them,
    not from its own (where another stack's variables may be set)."""
    monkeypatch.setenv(env_name("qdrant_url"), "http://this-process.invalid:6333")
    child = Settings.from_environ({"DEEPLENS_REDIS_URL": "redis://child.invalid/1", "PATH": "/bin"})
    assert child.qdrant_url is None
    assert child.redis_url == "redis://child.invalid/1"
    assert isinstance(child, Settings)
