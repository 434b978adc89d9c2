from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from deeplens.model import Embedder, ModelSpec
from deeplens_local import synthetic
from deeplens_local.model.cut import cut_to_pooled, list_nodes, main


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CNN: conv -> relu -> global pool (N x 4 x 1 x 1) -> flatten -> 10 logits."""
    rng = np.random.default_rng(0)
    weights = {
        "conv_w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "fc_w": rng.standard_normal((10, 4)).astype(np.float32),
        "fc_b": rng.standard_normal(10).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path


def test_list_nodes_shows_candidates_with_shapes(classifier: Path) -> None:
    candidates = {n.name: (n.op_type, n.shape, n.dimension) for n in list_nodes(classifier)}
    assert candidates == {
        "pool": ("GlobalAveragePool", ("N", 4, 1, 1), 4),
        "flat": ("Flatten", ("N", 4), 4),
        "logits": ("Gemm", ("N", 10), 10),
    }
    everything = [n.name for n in list_nodes(classifier, candidates_only=False)]
    assert everything == ["conv", "relu", "pool", "flat", "logits"]


def test_cut_to_pooled_flattens_the_pool_and_keeps_its_values(
    classifier: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "tiny_pooled.onnx"
    info = cut_to_pooled(classifier, dst, "pool")
    assert (info.name, info.shape, info.dimension) == ("embedding", ("N", 4), 4)

    x = np.random.default_rng(1).standard_normal((5, 3, 8, 8)).astype(np.float32)
    (features,) = ort.InferenceSession(dst).run(["embedding"], {"x": x})
    (logits,) = ort.InferenceSession(classifier).run(["logits"], {"x": x})
    assert features.shape == (5, 4)
    fc = {i.name: numpy_helper.to_array(i) for i in onnx.load(classifier).graph.initializer}
    np.testing.assert_allclose(features @ fc["fc_w"].T + fc["fc_b"], logits, rtol=1e-5, atol=1e-5)
    assert {n.op_type for n in onnx.load(dst).graph.node} == {
        "Conv",
        "Relu",
        "GlobalAveragePool",
        "Flatten",
    }


def test_cut_rejects_an_unknown_node(classifier: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no node produces 'avgpool'"):
        cut_to_pooled(classifier, tmp_path / "x.onnx", "avgpool")


def test_a_cut_model_serves_as_a_registry_entry(classifier: Path, tmp_path: Path) -> None:
    dst = tmp_path / "tiny_pooled.onnx"
    assert main(["cut", str(classifier), str(dst), "--output", "flat"]) == 0
    spec = ModelSpec(
        name="tiny",
        path=dst,
        input_size=8,
        resize=9,
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        input_node="x",
        output_node="embedding",
        dimension=4,
    )
    with Embedder(spec, threads=1) as tiny:
        result = tiny.embed_bytes([synthetic.photo_bytes(s, 64, 48) for s in range(3)])
    assert result.vectors.shape == (3, 4) and not result.errors
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-5)


def test_cli_lists_nodes(classifier: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", str(classifier)]) == 0
    out = capsys.readouterr().out
    assert "pool\tGlobalAveragePool\tN x 4 x 1 x 1\tdim=4" in out
