"""Fakes for the resources that would reach a model, a Qdrant server or Kafka.

Dagster may copy a resource when it initialises it for a run or a tick, so a fake that has to
share state with the test (the in-memory Qdrant client, the Kafka log) finds it in a registry,
under a key that is the resource's only config field.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qdrant_client import QdrantClient

from deeplens.model.embedder import Embedder
from deeplens.model.imaging import DECODE_ERRORS, ImageError, decode
from deeplens_dagster.resources import EmbedderResource, KafkaResource, QdrantResource

_REGISTRY: dict[str, object] = {}


def register(thing: object) -> str:
    """Keep `thing` for fakes to find; returns its key."""
    key = uuid.uuid4().hex
    _REGISTRY[key] = thing
    return key


def unregister(key: str) -> None:
    _REGISTRY.pop(key, None)


# -- the model ------------------------------------------------------------------------------


def fake_vector(data: bytes, dimension: int) -> np.ndarray:
    """A unit vector determined by the bytes alone (float32, `dimension` long)."""
    seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    vec = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vec / np.linalg.norm(vec)


class FakeEmbedder(EmbedderResource):
    """The real model's spec (name, version, dimension) without loading the model.

    Bytes the project's decoder rejects are reported as errors, as the real embedder does;
    the others get `fake_vector`, except bytes whose sha256 is in `nan_for`: their vector is
    all NaN (a model that misbehaves on one input).
    """

    nan_for: list[str] = []

    def embedder(self, model: str) -> Embedder:
        raise AssertionError("the fake embedder never loads the ONNX model")

    def embed_stream(
        self, model: str, chunks: Iterable[list[bytes]]
    ) -> Iterator[tuple[np.ndarray, dict[int, str]]]:
        dimension = self.spec(model).dimension
        for chunk in chunks:
            vectors: list[np.ndarray] = []
            errors: dict[int, str] = {}
            for n, data in enumerate(chunk):
                try:
                    decode(data)
                except (ImageError, *DECODE_ERRORS) as exc:
                    errors[n] = str(exc) or type(exc).__name__
                    continue
                if hashlib.sha256(data).hexdigest() in self.nan_for:
                    vectors.append(np.full(dimension, np.nan, np.float32))
                else:
                    vectors.append(fake_vector(data, dimension))
            yield np.stack(vectors) if vectors else np.zeros((0, dimension), np.float32), errors


# -- Qdrant ---------------------------------------------------------------------------------


class FakeQdrantResource(QdrantResource):
    """Every use gets the registered (in-memory) client; it outlives the run."""

    client_key: str

    @property
    def client(self) -> QdrantClient:
        found = _REGISTRY[self.client_key]
        assert isinstance(found, QdrantClient)
        return found

    def connect_in_background(self) -> None:
        return None


# -- Kafka ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeMessage:
    """What `read_messages` reads off a confluent_kafka message."""

    _partition: int
    _offset: int
    _value: bytes | None
    _error: object | None = None
    _headers: list[tuple[str, bytes]] | None = None

    def partition(self) -> int:
        return self._partition

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> object | None:
        return self._error


@dataclass(frozen=True)
class TopicMetadata:
    partitions: dict[int, object]


@dataclass(frozen=True)
class ClusterMetadata:
    cluster_id: str
    topics: dict[str, TopicMetadata]


@dataclass
class KafkaLog:
    """An in-memory broker: per topic and partition, the values in offset order."""

    cluster_id: str = "fake-cluster"
    topics: dict[str, dict[int, list[bytes | None]]] = field(default_factory=dict)
    produced: list[tuple[str, str, bytes]] = field(default_factory=list)
    consumers_opened: int = 0
    consumers_closed: int = 0

    def append(self, topic: str, partition: int, value: bytes | None) -> int:
        """Append to a partition of an existing topic; returns the message's offset."""
        log = self.topics[topic][partition]
        log.append(value)
        return len(log) - 1


class FakeConsumer:
    """The consumer calls `read_messages` makes: list_topics, assign, consume, close."""

    def __init__(self, log: KafkaLog) -> None:
        self.log = log
        self.positions: dict[tuple[str, int], int] = {}
        log.consumers_opened += 1

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        names = [topic] if topic is not None else list(self.log.topics)
        return ClusterMetadata(
            self.log.cluster_id,
            {
                name: TopicMetadata({p: object() for p in self.log.topics[name]})
                for name in names
                if name in self.log.topics
            },
        )

    def assign(self, partitions: list[Any]) -> None:
        self.positions = {(tp.topic, tp.partition): tp.offset for tp in partitions}

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        out: list[FakeMessage] = []
        for (topic, partition), position in sorted(self.positions.items()):
            values = self.log.topics[topic][partition]
            while position < len(values) and len(out) < num_messages:
                out.append(FakeMessage(partition, position, values[position]))
                position += 1
            self.positions[(topic, partition)] = position
        return out

    def close(self) -> None:
        self.log.consumers_closed += 1


class FakeProducer:
    """Records what is produced; every message is delivered at once."""

    def __init__(self, log: KafkaLog) -> None:
        self.log = log
        self.pending: list[tuple[Callable[..., None] | None, tuple[str, str, bytes]]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        on_delivery: Callable[..., None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.pending.append((on_delivery, (topic, (key or b"").decode(), value or b"")))

    def poll(self, timeout: float = 0) -> int:
        return self.flush(timeout)

    def flush(self, timeout: float = -1) -> int:
        while self.pending:
            on_delivery, message = self.pending.pop(0)
            self.log.produced.append(message)
            if on_delivery is not None:
                on_delivery(None, message)
        return 0


class FakeKafkaResource(KafkaResource):
    """Consumers read, and the producer writes, the registered `KafkaLog`."""

    log_key: str

    @property
    def kafka_log(self) -> KafkaLog:
        found = _REGISTRY[self.log_key]
        assert isinstance(found, KafkaLog)
        return found

    def consumer(self) -> Any:
        return FakeConsumer(self.kafka_log)

    @property
    def producer(self) -> Any:
        return FakeProducer(self.kafka_log)
