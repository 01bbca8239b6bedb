"""Declared outputs (``output:``): raw scores become labels and probabilities through the real
onnxruntime (a logits-only model, as PyTorch exports one), checked against the graph the way
`mlops validate` checks them, and the module stays stdlib + numpy (the Lambda zip's)."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework.runtime.errors import RequestError
from framework.runtime.inference import ModelBundle, ModelUnavailableError
from framework.runtime.outputs import OutputSpec
from framework.runtime.signature import TensorInfo
from tests.runtime.tinymodels import metadata

FEATURES = [{"name": "a", "type": "float"}, {"name": "b", "type": "float"}]


def linear_onnx(weights: list[list[float]], bias: list[float], output: str = "logits",
                dims: int = 2) -> bytes:
    """``output = input @ W + B``: the graph ``torch.onnx.export`` gives for nn.Linear."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(weights, dtype=np.float32)
    k = w.shape[1]
    nodes = [helper.make_node("MatMul", ["input", "W"], ["xw"]),
             helper.make_node("Add", ["xw", "B"], [output if dims == 2 else "raw"])]
    if dims == 1:
        nodes.append(helper.make_node("Squeeze", ["raw", "axes"], [output]))
    inits = [numpy_helper.from_array(w, "W"),
             numpy_helper.from_array(np.asarray(bias, dtype=np.float32), "B")]
    if dims == 1:
        inits.append(numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axes"))
    shape: list[Any] = [None, k] if dims == 2 else [None]
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def bundle(model: bytes, output: dict[str, Any], task: str = "classification") -> ModelBundle:
    meta = metadata("m", model, FEATURES, task=task, classes=output.get("labels"))
    meta["output"] = output
    return ModelBundle.from_bytes(meta, model, meta["sha256"])


LOGITS = linear_onnx([[1.0, -1.0, 0.0], [0.0, 2.0, -2.0]], [0.0, 0.5, 0.0])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def test_logits_become_labels_and_probabilities() -> None:
    b = bundle(LOGITS, {"tensor": "logits", "transform": "softmax",
                        "labels": ["cat", "dog", "fish"]})
    rows = [{"a": 2.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, {"a": -1.0, "b": -1.0}]
    answer = b.predict({"instances": rows}, request_id="r1")
    x = np.asarray([[2.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    want = softmax(x @ np.asarray([[1.0, -1.0, 0.0], [0.0, 2.0, -2.0]]) + [0.0, 0.5, 0.0])
    assert answer["classes"] == ["cat", "dog", "fish"]
    assert answer["predictions"] == [["cat", "dog", "fish"][i] for i in want.argmax(axis=1)]
    assert np.allclose(answer["probabilities"], want, atol=1e-6)
    assert all(math.isclose(sum(p), 1.0, abs_tol=1e-9) for p in answer["probabilities"])
    # The OIP answer names the tensors it made, not the graph's.
    assert (b.outputs.label, b.outputs.probabilities) == ("label", "probabilities")


def test_one_logit_per_row_through_sigmoid_and_threshold() -> None:
    model = linear_onnx([[1.0], [1.0]], [0.0])
    b = bundle(model, {"transform": "sigmoid", "labels": ["legit", "fraud"], "threshold": 0.8})
    answer = b.predict({"instances": [{"a": 1.0, "b": 0.0}, {"a": 2.0, "b": 1.0}]})
    p = 1 / (1 + np.exp(-np.asarray([1.0, 3.0])))
    assert np.allclose([row[1] for row in answer["probabilities"]], p, atol=1e-6)
    assert answer["predictions"] == ["legit", "fraud"]  # 0.73 < 0.8 <= 0.95


def test_a_regressors_output_is_scaled() -> None:
    model = linear_onnx([[2.0], [1.0]], [1.0], output="variable", dims=1)
    b = bundle(model, {"scale": 1000.0, "offset": -5.0}, task="regression")
    answer = b.predict({"instances": [{"a": 1.0, "b": 1.0}]})
    assert answer["predictions"] == pytest.approx([(2 + 1 + 1) * 1000 - 5])
    assert "probabilities" not in answer


def test_non_finite_scores_are_a_500_not_nulls() -> None:
    b = bundle(LOGITS, {"transform": "softmax", "labels": ["a", "b", "c"]})
    with pytest.raises(RequestError) as failed:
        b.predict({"instances": [{"a": 3e38, "b": 3e38}]})
    assert failed.value.status == 500 and "row 0" in str(failed.value)


def info(name: str, shape: tuple[int | None, ...] | None, kind: str = "float") -> TensorInfo:
    return TensorInfo(name, shape, kind)


@pytest.mark.parametrize(("output", "graph", "problem"), [
    ({"tensor": "scores"}, [info("logits", (None, 3))], "no output 'scores'"),
    ({"transform": "softmax", "labels": ["a", "b"]}, [info("logits", (None, 3))],
     "3 scores per row but 2 labels"),
    ({"transform": "softmax"}, [info("logits", (None, 1))], "softmax needs one per class"),
    ({"transform": "sigmoid"}, [info("logits", (None, 3))], "sigmoid reads one logit"),
    ({"transform": "sigmoid", "labels": ["a", "b", "c"]}, [info("logit", (None,))],
     "declare 2 labels"),
    ({"tensor": "label"}, [info("label", (None,), "int64")], "holds int64"),
    ({"labels": ["a", "b", "c"]}, [info("probabilities", (None, 2))],
     "2 probabilities per row but 3 labels"),
    ({}, [info("x", (None, 2)), info("y", (None, 2))], "say which output to read"),
    ({"tensor": "t"}, [info("t", (None, 2, 2))], "must be [N] or [N, K]"),
])
def test_declared_outputs_that_do_not_fit_the_graph(output: dict[str, Any],
                                                    graph: list[TensorInfo],
                                                    problem: str) -> None:
    problems = OutputSpec.from_dict(output, "classification").check(graph)
    assert problems and problem in problems[0], problems


def test_what_fits_passes_and_a_regressor_wants_one_value() -> None:
    fits = OutputSpec.from_dict({"labels": ["a", "b"]}, "classification")
    assert fits.check([info("label", (None,), "int64"), info("probabilities", (None, 2))]) == []
    regression = OutputSpec.from_dict({}, "regression")
    assert regression.check([info("variable", (None, 1))]) == []
    assert "a regressor's has 1" in regression.check([info("variable", (None, 4))])[0]


def test_a_model_whose_output_does_not_fit_is_not_served() -> None:
    with pytest.raises(ModelUnavailableError, match="3 scores per row but 2 labels"):
        bundle(LOGITS, {"transform": "softmax", "labels": ["a", "b"]})


def test_the_module_is_stdlib_and_numpy() -> None:
    source = Path(__file__).resolve().parents[2] / "framework/runtime/outputs.py"
    imported = {(n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom)
                else a.name.split(".")[0]
                for n in ast.walk(ast.parse(source.read_text()))
                if isinstance(n, ast.Import | ast.ImportFrom)
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= {"__future__", "collections", "dataclasses", "typing", "numpy"}
