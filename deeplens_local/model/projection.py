"""A deliberately bad model for tests: a random projection of an image's mean colour.

It is a genuine ONNX model (input `input` float32 N x 3 x 224 x 224, output `embedding`
float32 N x `dimension`) whose vectors are finite and unit-length once normalised, so it passes
every check on the vectors themselves; but images of similar colour get the same vector, so it
finds near-duplicates far less often than a real model. Registered as a third entry (a models
file), it is what the retrieval check of a model migration must refuse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "random_projection"


def write(path: Path, dimension: int = 64, seed: int = 0) -> Path:
    weights = np.random.default_rng(seed).standard_normal((3, dimension)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input", "axes"], ["means"], keepdims=0),
            helper.make_node("MatMul", ["means", "weights"], ["embedding"]),
        ],
        "random_projection",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dimension])],
        [
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def models_file(directory: Path, dimension: int = 64) -> Path:
    """A models file (TOML) registering the random projection as `random_projection`."""
    write(directory / f"{NAME}.onnx", dimension)
    entry = directory / "models.toml"
    entry.write_text(
        f"""[models.{NAME}]
path = "{NAME}.onnx"
mean = [127.0, 127.0, 127.0]
std = [128.0, 128.0, 128.0]
input_node = "input"
output_node = "embedding"
dimension = {dimension}
description = "a random projection of the mean colour (a deliberately bad model, for tests)"
"""
    )
    return entry
