"""Cut an ONNX classifier down to its pooled features, and list the nodes one could cut at.

A user's model (say ResNet50, whose output is 1000 logits) is turned into an embedding model by
making an inner tensor, usually the global average pool (N x 2048 x 1 x 1) or its flatten, the
graph's only output, flattened to N x C. Used as `deeplens model nodes` / `deeplens model cut`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper, shape_inference

Dim = int | str | None
DEFAULT_OUTPUT_NAME = "embedding"


@dataclass(frozen=True)
class NodeInfo:
    """A tensor produced by a node: `name` is what a ModelSpec's `output_node` refers to."""

    name: str
    op_type: str
    shape: tuple[Dim, ...]

    @property
    def dimension(self) -> int | None:
        """Values per image (all but the batch axis), if the shape is known."""
        rest = self.shape[1:]
        if not rest or not all(isinstance(d, int) for d in rest):
            return None
        return math.prod(d for d in rest if isinstance(d, int))

    @property
    def pooled(self) -> bool:
        """N x C, or N x C x 1 x 1: a vector per image, a candidate embedding."""
        return len(self.shape) == 2 or (len(self.shape) == 4 and self.shape[2:] == (1, 1))


def list_nodes(path: str | os.PathLike[str], *, candidates_only: bool = True) -> list[NodeInfo]:
    """Tensors produced by the graph's nodes, in graph order, with inferred shapes.

    By default only candidates (one vector per image: N x C or N x C x 1 x 1) are listed.
    """
    model = shape_inference.infer_shapes(onnx.load(os.fspath(path), load_external_data=False))
    shapes = {
        value.name: _shape(value)
        for value in [*model.graph.value_info, *model.graph.output, *model.graph.input]
    }
    nodes = [
        NodeInfo(output, node.op_type, shapes[output])
        for node in model.graph.node
        for output in node.output
        if output in shapes
    ]
    return [n for n in nodes if n.pooled] if candidates_only else nodes


def cut_to_pooled(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    output_node: str,
    *,
    output_name: str = DEFAULT_OUTPUT_NAME,
    flatten: bool = True,
) -> NodeInfo:
    """Write to `dst` the part of `src` that computes `output_node`, as output `output_name`.

    An N x C x 1 x 1 tensor is flattened to N x C (unless `flatten` is false). Returns the new
    output's info; its `dimension` is what the registry entry needs.
    """
    model = onnx.load(os.fspath(src))
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value.name for value in model.graph.input if value.name not in initializers]
    produced = {output for node in model.graph.node for output in node.output}
    if output_node not in produced:
        raise ValueError(f"{src}: no node produces '{output_node}' (see `list_nodes`)")
    inferred = shape_inference.infer_shapes(model)
    cut = onnx.utils.Extractor(inferred).extract_model(inputs, [output_node])
    (value,) = cut.graph.output
    shape = _shape(value)
    op = "Flatten" if flatten and len(shape) == 4 and shape[2:] == (1, 1) else "Identity"
    node = helper.make_node(op, [output_node], [output_name])
    if op == "Flatten":
        node.attribute.append(helper.make_attribute("axis", 1))
    cut.graph.node.append(node)
    new_shape = (shape[0], shape[1]) if op == "Flatten" else shape
    elem_type = value.type.tensor_type.elem_type
    del cut.graph.output[:]
    cut.graph.output.append(helper.make_tensor_value_info(output_name, elem_type, new_shape))
    onnx.checker.check_model(cut)
    onnx.save(cut, os.fspath(dst))
    return NodeInfo(output_name, op, new_shape)


def _shape(value: onnx.ValueInfoProto) -> tuple[Dim, ...]:
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)


def main(argv: Sequence[str] | None = None) -> int:
    """`nodes MODEL [--all]` and `cut SRC DST --output NODE [--name NAME] [--no-flatten]`."""
    parser = argparse.ArgumentParser(prog="deeplens model", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    nodes = commands.add_parser("nodes", help="list tensors one could use as the embedding")
    nodes.add_argument("model", type=Path)
    nodes.add_argument("--all", action="store_true", help="every tensor, not only candidates")
    cut = commands.add_parser("cut", help="keep the graph up to one tensor, flattened")
    cut.add_argument("src", type=Path)
    cut.add_argument("dst", type=Path)
    cut.add_argument("--output", required=True, help="tensor to cut at (see `nodes`)")
    cut.add_argument("--name", default=DEFAULT_OUTPUT_NAME, help="name of the new output")
    cut.add_argument("--no-flatten", action="store_true", help="keep N x C x 1 x 1 as it is")
    args = parser.parse_args(argv)

    if args.command == "nodes":
        for node in list_nodes(args.model, candidates_only=not args.all):
            shape = " x ".join(str(d) for d in node.shape)
            print(f"{node.name}\t{node.op_type}\t{shape}\tdim={node.dimension}")
        return 0
    info = cut_to_pooled(
        args.src, args.dst, args.output, output_name=args.name, flatten=not args.no_flatten
    )
    print(f"wrote {args.dst}: output '{info.name}' shape {info.shape}")
    print(f'registry entry: path = "{args.dst}", output_node = "{info.name}", ', end="")
    print(f"dimension = {info.dimension}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
