"""Candidates that misbehave, made from a good ONNX model by adding nodes in front of it.

- ``crashing``: reshapes the input to [13, -1] and back, which fails for any batch whose size
  is not a multiple of 13 — every single-row request crashes in onnxruntime;
- ``constant``: multiplies the input by zero — valid, fast, and always the same answer (its
  outputs drift away from the stable version's);
- ``slow``: adds a chain of large matrix products whose result is multiplied by zero and added
  to the input — same answers, tens of milliseconds more per request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _prepend(model_path: Path, nodes: list[onnx.NodeProto],
             inits: list[onnx.TensorProto], out_path: Path) -> None:
    model = onnx.load(str(model_path))
    graph = model.graph
    source = graph.input[0].name
    for node in graph.node:
        node.input[:] = ["fed" if name == source else name for name in node.input]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph.initializer.extend(inits)
    onnx.checker.check_model(model)
    out_path.write_bytes(model.SerializeToString())


def crashing(model_path: Path, out_path: Path) -> None:
    src = onnx.load(str(model_path)).graph.input[0].name
    shapes = [numpy_helper.from_array(np.array([13, -1], dtype=np.int64), "odd_shape"),
              numpy_helper.from_array(np.array([-1, 30], dtype=np.int64), "row_shape")]
    nodes = [helper.make_node("Reshape", [src, "odd_shape"], ["odd"]),
             helper.make_node("Reshape", ["odd", "row_shape"], ["fed"])]
    _prepend(model_path, nodes, shapes, out_path)


def slow(model_path: Path, out_path: Path, products: int = 60, size: int = 384) -> None:
    src = onnx.load(str(model_path)).graph.input[0].name
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((size, size)) / size).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w"),
             numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    # The chain starts from the input (times zero), so it cannot be folded at load time.
    nodes = [helper.make_node("ReduceSum", [src], ["seen"], keepdims=0),
             helper.make_node("Mul", ["seen", "zero"], ["nil"]),
             helper.make_node("Add", ["w", "nil"], ["w0"])]
    prev = "w0"
    for i in range(products):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"m{i}"]))
        prev = f"m{i}"
    nodes += [helper.make_node("ReduceSum", [prev], ["total"], keepdims=0),
              helper.make_node("Mul", ["total", "zero"], ["nothing"]),
              helper.make_node("Add", [src, "nothing"], ["fed"])]
    _prepend(model_path, nodes, inits, out_path)


def constant(model_path: Path, out_path: Path) -> None:
    src = onnx.load(str(model_path)).graph.input[0].name
    inits = [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    _prepend(model_path, [helper.make_node("Mul", [src, "zero"], ["fed"])], inits, out_path)
