from __future__ import annotations

import pytest

from framework.runtime.features import FeatureSpec
from framework.runtime.signature import SignatureError, TensorInfo, plan_inputs, plan_outputs

F3 = [FeatureSpec("a"), FeatureSpec("b"), FeatureSpec("c", "category", values=("x", "y"))]


def _problems(inputs: list[TensorInfo], features: list[FeatureSpec]) -> list[str]:
    with pytest.raises(SignatureError) as info:
        plan_inputs(inputs, features)
    return info.value.problems


def test_single_tensor_layout() -> None:
    plan = plan_inputs([TensorInfo("input", (None, 3), "float")], F3)
    assert plan.layout == "tensor"
    assert plan_inputs([TensorInfo("input", (None, None), "double")], F3).layout == "tensor"


def test_single_tensor_width_and_type_problems() -> None:
    assert (
        "takes 4 values per row but 3" in _problems([TensorInfo("in", (None, 4), "float")], F3)[0]
    )
    assert "numeric tensor" in _problems([TensorInfo("in", (None, 3), "string")], F3)[0]
    assert "2-D tensor" in _problems([TensorInfo("in", (None,), "float")], F3)[0]
    assert "are float" in _problems([TensorInfo("in", (None, 3), "int64")], F3)[0]


def test_nullable_needs_a_float_carrier() -> None:
    feats = [FeatureSpec("n", "int", nullable=True), FeatureSpec("m", "int")]
    assert "missing values" in _problems([TensorInfo("in", (None, 2), "int64")], feats)[0]
    cols = [TensorInfo("n", (None, 1), "int64"), TensorInfo("m", (None, 1), "int64")]
    assert "missing values" in _problems(cols, feats)[0]


def test_per_column_layout_names_must_match() -> None:
    cols = [
        TensorInfo("a", (None, 1), "float"),
        TensorInfo("b", (None, 1), "float"),
        TensorInfo("c", (None, 1), "string"),
    ]
    assert plan_inputs(cols, F3).layout == "columns"
    problems = _problems([cols[0], TensorInfo("bee", (None, 1), "float"), cols[2]], F3)
    assert "no model input for features [b]" in problems[0]
    assert "model inputs [bee] are not declared features" in problems[1]
    bad = [cols[0], cols[1], TensorInfo("c", (None, 1), "bool")]
    assert "cannot take category values" in _problems(bad, F3)[0]


def test_outputs_label_and_probabilities() -> None:
    outs = [
        TensorInfo("output_label", (None,), "int64"),
        TensorInfo("output_probability", None, "seq(map(int64,tensor(float)))"),
    ]
    plan = plan_outputs(outs, "classification")
    assert (plan.label, plan.probabilities) == ("output_label", "output_probability")
    reg = plan_outputs([TensorInfo("variable", (None, 1), "float")], "regression")
    assert (reg.label, reg.probabilities) == ("variable", None)
    with pytest.raises(SignatureError, match="no label/prediction"):
        plan_outputs([TensorInfo("zm", None, "seq(map(int64,tensor(float)))")], "classification")
