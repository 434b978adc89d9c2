"""Collection configuration: Qdrant's create request in, Qdrant's ``CollectionConfig`` out.

The normalised config (the JSON that ``GET /collections/{name}`` reports under ``config``) is what
a collection's ``meta.json`` stores; :func:`edge_config` turns it into the shard's ``EdgeConfig``.
Defaults are Qdrant's own (HNSW indexing starts at the same ``indexing_threshold``, in kB), except
``default_segment_number``: see ``OPTIMIZER_DEFAULTS``.
"""

from __future__ import annotations

import copy
from typing import Any

import qdrant_edge as qe

from deeplens_local.qdrant.errors import BadRequest, FormatError, ValidationError

HNSW_DEFAULTS: dict[str, Any] = {
    "m": 16,
    "ef_construct": 100,
    "full_scan_threshold": 10000,
    "max_indexing_threads": 0,
    "on_disk": False,
}
OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "deleted_threshold": 0.2,
    "vacuum_min_vector_number": 1000,
    # Qdrant's 0 means "one per CPU". Here the optimizer blocks its collection while it runs, and
    # with few target segments each newly indexed segment is merged into a big one whose HNSW
    # graph is rebuilt (1280-d, 2 CPUs: 4-11 s per 2,500 new points, growing with the
    # collection); with 8 only the new segment is indexed (0.9 s), for somewhat slower searches
    # (one HNSW search per segment). 8 is what Qdrant itself picks on an 8-CPU machine.
    "default_segment_number": 8,
    "max_segment_size": None,
    "memmap_threshold": None,
    "indexing_threshold": 10000,
    "flush_interval_sec": 5,
    "max_optimization_threads": None,
}
WAL_DEFAULTS: dict[str, Any] = {"wal_capacity_mb": 32, "wal_segments_ahead": 0}
DISTANCES = {"Cosine": qe.Distance.Cosine, "Euclid": qe.Distance.Euclid, "Dot": qe.Distance.Dot}
DISTANCES["Manhattan"] = qe.Distance.Manhattan
DATATYPES = {"float32": qe.VectorStorageDatatype.Float32}
DATATYPES |= {"float16": qe.VectorStorageDatatype.Float16, "uint8": qe.VectorStorageDatatype.Uint8}
_VECTOR_KEYS = {"size", "distance", "hnsw_config", "quantization_config", "on_disk", "datatype"}
_IGNORED = {"shard_number", "replication_factor", "write_consistency_factor", "wal_config"}
_IGNORED |= {"strict_mode_config", "sharding_method", "timeout"}


def normalise(request: dict[str, Any]) -> dict[str, Any]:
    """Validate a ``PUT /collections/{name}`` body; answer the config the collection will have."""
    try:
        return _normalise(request)
    except (KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"invalid collection config: {exc!r}") from exc


def _normalise(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("sparse_vectors"):
        raise BadRequest("sparse vectors are not supported by the local Qdrant server")
    if request.get("init_from") or request.get("sharding_method") == "custom":
        raise BadRequest("init_from and custom sharding are not supported by the local server")
    vectors = request.get("vectors")
    if not isinstance(vectors, dict) or not vectors:
        raise BadRequest("the local Qdrant server needs `vectors` (dense vectors)")
    if "size" in vectors:
        vectors = _vector(vectors, "vectors")
    else:
        vectors = {name: _vector(spec, f"vectors.{name}") for name, spec in vectors.items()}
    unknown = set(request) - _IGNORED - {"vectors", "sparse_vectors", "init_from", "metadata"}
    unknown -= {"hnsw_config", "optimizers_config", "quantization_config", "on_disk_payload"}
    if unknown:
        raise FormatError(f"unknown field(s) {sorted(unknown)}")
    return {
        "params": {
            "vectors": vectors,
            "shard_number": 1,
            "replication_factor": 1,
            "write_consistency_factor": 1,
            "on_disk_payload": bool(request.get("on_disk_payload", True)),
        },
        "hnsw_config": _merge(HNSW_DEFAULTS, request.get("hnsw_config"), "hnsw_config"),
        "optimizer_config": _merge(
            OPTIMIZER_DEFAULTS, request.get("optimizers_config"), "optimizers_config"
        ),
        "wal_config": dict(WAL_DEFAULTS),
        "quantization_config": _quantization(request.get("quantization_config")),
        "metadata": request.get("metadata"),
    }


def update(config: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The config after a ``PATCH /collections/{name}`` (optimizers, HNSW and metadata only)."""
    unsupported = {k for k, v in request.items() if v and k not in _UPDATABLE} - _IGNORED
    if unsupported:
        raise BadRequest(f"updating {sorted(unsupported)} is not supported by the local server")
    new = copy.deepcopy(config)
    try:
        if request.get("optimizers_config") is not None:
            new["optimizer_config"] = _merge(
                new["optimizer_config"], request["optimizers_config"], "optimizers_config"
            )
        if request.get("hnsw_config") is not None:
            new["hnsw_config"] = _merge(new["hnsw_config"], request["hnsw_config"], "hnsw_config")
    except (KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"invalid collection update: {exc!r}") from exc
    if request.get("metadata") is not None:
        new["metadata"] = {**(new.get("metadata") or {}), **request["metadata"]}
    return new


_UPDATABLE = {"optimizers_config", "hnsw_config", "metadata"}


def _vector(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict) or "size" not in spec or "distance" not in spec:
        raise FormatError(f"{where}: expected an object with `size` and `distance`")
    unknown = set(spec) - _VECTOR_KEYS - {"memory", "multivector_config"}
    if unknown:
        raise FormatError(f"{where}: unknown field(s) {sorted(unknown)}")
    if spec.get("multivector_config"):
        raise BadRequest("multivectors are not supported by the local Qdrant server")
    size = spec["size"]
    if not isinstance(size, int) or not 1 <= size <= 65536:
        raise ValidationError(f"{where}.size: value {size} invalid, must be from 1 to 65536")
    if spec["distance"] not in DISTANCES:
        raise FormatError(
            f"unknown variant `{spec['distance']}`, expected one of {', '.join(DISTANCES)}"
        )
    if spec.get("datatype") not in (None, *DATATYPES):
        raise BadRequest(f"{where}.datatype {spec['datatype']!r} is not supported locally")
    vector = {k: v for k, v in spec.items() if k in _VECTOR_KEYS and v is not None}
    if "quantization_config" in vector:
        vector["quantization_config"] = _quantization(vector["quantization_config"])
    return vector


def _merge(defaults: dict[str, Any], diff: Any, where: str) -> dict[str, Any]:
    merged = copy.deepcopy(defaults)
    if diff is None:
        return merged
    if not isinstance(diff, dict):
        raise FormatError(f"{where} must be an object")
    merged.update({k: v for k, v in diff.items() if v is not None})
    return merged


def _quantization(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    scalar = spec.get("scalar") if isinstance(spec, dict) and len(spec) == 1 else None
    if not isinstance(scalar, dict) or scalar.get("type") != "int8":
        raise BadRequest("only scalar int8 quantization is supported by the local Qdrant server")
    return spec


def edge_config(config: dict[str, Any]) -> qe.EdgeConfig:
    """The ``EdgeConfig`` of a collection whose normalised config is ``config``."""
    vectors = config["params"]["vectors"]
    hnsw = config["hnsw_config"]
    if "size" in vectors:
        edge_vectors: Any = _edge_vector(vectors, hnsw)
    else:
        edge_vectors = {name: _edge_vector(spec, hnsw) for name, spec in vectors.items()}
    opt = config["optimizer_config"]
    return qe.EdgeConfig(
        vectors=edge_vectors,
        on_disk_payload=config["params"]["on_disk_payload"],
        hnsw_config=_edge_hnsw(hnsw),
        quantization_config=_edge_quantization(config.get("quantization_config")),
        optimizers=qe.EdgeOptimizersConfig(
            deleted_threshold=opt["deleted_threshold"],
            vacuum_min_vector_number=opt["vacuum_min_vector_number"],
            default_segment_number=opt["default_segment_number"],
            max_segment_size=opt["max_segment_size"],
            indexing_threshold=opt["indexing_threshold"],
            prevent_unoptimized=opt.get("prevent_unoptimized"),
        ),
    )


def _edge_hnsw(hnsw: dict[str, Any]) -> qe.HnswIndexConfig:
    return qe.HnswIndexConfig(
        m=hnsw["m"],
        ef_construct=hnsw["ef_construct"],
        full_scan_threshold=hnsw["full_scan_threshold"],
        max_indexing_threads=hnsw.get("max_indexing_threads") or 0,
        on_disk=hnsw.get("on_disk"),
        payload_m=hnsw.get("payload_m"),
    )


def _edge_vector(spec: dict[str, Any], hnsw: dict[str, Any]) -> qe.EdgeVectorParams:
    own_hnsw = spec.get("hnsw_config")
    return qe.EdgeVectorParams(
        size=spec["size"],
        distance=DISTANCES[spec["distance"]],
        on_disk=spec.get("on_disk"),
        datatype=DATATYPES.get(spec.get("datatype") or "float32"),
        quantization_config=_edge_quantization(spec.get("quantization_config")),
        hnsw_config=_edge_hnsw({**hnsw, **own_hnsw}) if own_hnsw else None,
    )


def _edge_quantization(spec: dict[str, Any] | None) -> qe.ScalarQuantizationConfig | None:
    if spec is None:
        return None
    scalar = spec["scalar"]
    return qe.ScalarQuantizationConfig(
        type=qe.ScalarType.Int8,
        quantile=scalar.get("quantile"),
        always_ram=scalar.get("always_ram"),
    )
