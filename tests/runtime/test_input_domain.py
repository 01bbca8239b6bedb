"""The model's input domain is the contract: a value its ONNX input cannot hold (float32 range,
integer widths), a non-finite value or a number too long to convert is a 422 naming the row
and the field, on the native and OIP formats alike; a non-finite answer is a 500."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from framework.runtime import http, oip
from framework.runtime.errors import RequestError
from framework.runtime.features import FeatureSpec, OversizedNumber, parse_payload
from framework.runtime.inference import ModelBundle, ModelOutputError, Prediction
from framework.runtime.signature import InputPlan, TensorInfo, bind_inputs

F32_MAX = float(np.finfo(np.float32).max)
ROW = {"a": 1.0, "b": 0.5, "c": -0.2}
HUGE = "9" * 5001


def _problem(features: tuple[FeatureSpec, ...], value: Any) -> dict[str, Any]:
    with pytest.raises(RequestError) as info:
        parse_payload({"instances": [{"x": 0}, {"x": value}]}, features)
    assert info.value.status == 422
    [detail] = info.value.details
    assert detail["row"] == 1 and detail["field"] == "x"
    return detail


def _ok(features: tuple[FeatureSpec, ...], value: Any) -> Any:
    [[got]] = parse_payload({"instances": [{"x": value}]}, features)
    return got


FLOAT32 = (FeatureSpec("x", "float", dtype="float"),)


@pytest.mark.parametrize("value", [F32_MAX, -F32_MAX, 3.4e38, -3.4e38, 0.0, 1e-45, 5])
def test_float32_range_is_accepted(value: float) -> None:
    got = _ok(FLOAT32, value)
    assert got == value and type(got) is float
    assert np.isfinite(np.float32(got))  # what the model receives is finite


@pytest.mark.parametrize("value", [3.5e38, -3.5e38, 3.5e39, 1e39, 1.7e308, 10**39, -(10**300)])
def test_beyond_float32_is_rejected(value: float) -> None:
    detail = _problem(FLOAT32, value)
    assert detail["problem"].startswith(
        "is outside the float32 range of the model's input (±3.4028234663852886e+38), got ")


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_values_are_rejected(value: float) -> None:
    assert _problem(FLOAT32, value)["problem"].startswith("must be a finite number")


def test_declared_bounds_are_named_before_the_input_range() -> None:
    bounded = (FeatureSpec("x", "float", min=0.0, dtype="float"),)
    assert _problem(bounded, -1e39)["problem"] == "must be >= 0, got -1e+39"
    assert _problem(bounded, 1e39)["problem"].startswith("is outside the float32 range")
    assert bounded[0].bounds() == (0.0, F32_MAX)


@pytest.mark.parametrize(("dtype", "low", "high"), [
    ("int8", -128, 127), ("uint8", 0, 255), ("int16", -(2**15), 2**15 - 1),
    ("int32", -(2**31), 2**31 - 1), ("uint32", 0, 2**32 - 1), ("int64", -(2**63), 2**63 - 1),
    ("uint64", 0, 2**64 - 1),
])
def test_integer_widths(dtype: str, low: int, high: int) -> None:
    features = (FeatureSpec("x", "int", dtype=dtype),)
    assert _ok(features, low) == low and _ok(features, high) == high
    assert _ok(features, float(low)) == low  # 3.0 is an integer
    for value in (low - 1, high + 1):
        assert _problem(features, value)["problem"] == (
            f"is outside the {dtype} range of the model's input ({low}..{high}), got {value}")


def test_an_int_feature_in_a_float_tensor_takes_the_float32_range() -> None:
    features = (FeatureSpec("x", "int", dtype="float"),)
    assert _ok(features, 2**100) == 2**100
    assert _problem(features, 2**200)["problem"].startswith("is outside the float32 range")


def test_without_a_model_the_64_bit_ranges_apply() -> None:
    assert _problem((FeatureSpec("x", "int"),), 2**63)["problem"].startswith(
        "is outside the int64 range (")
    assert _ok((FeatureSpec("x", "float"),), 1e39) == 1e39
    assert _problem((FeatureSpec("x", "float"),), 10**400)["problem"].startswith(
        "is outside the float64 range (")


def _request(body: str) -> http.Request:
    return http.Request("POST", "/p", {"content-type": "application/json"},
                        body.encode(), text=body)


def test_a_5001_digit_number_is_a_422_naming_row_and_field() -> None:
    for sign in ("", "-"):
        payload = http.json_body(_request(f'{{"instances": [{{"x": 1}}, {{"x": {sign}{HUGE}}}]}}'))
        value = payload["instances"][1]["x"]
        assert type(value) is OversizedNumber and value.digits == 5001
        detail = _problem(FLOAT32, value)
        assert detail["problem"].endswith("got a number of 5001 digits")
    # as a row of values, and for an int feature
    payload = http.json_body(_request(f'{{"inputs": [[{HUGE}]]}}'))
    with pytest.raises(RequestError) as info:
        parse_payload(payload, (FeatureSpec("x", "int", dtype="int64"),))
    assert info.value.status == 422 and info.value.details[0]["field"] == "x"


def test_oversized_numbers_elsewhere_in_a_body_are_client_errors() -> None:
    # the same body read as bytes (no text), and a huge number where a shape is expected
    body = f'{{"inputs": [{{"name": "input", "shape": [{HUGE}], "datatype": "FP32", "data": []}}]}}'
    payload = http.json_body(http.Request("POST", "/p", {}, body.encode()))
    with pytest.raises(RequestError) as info:
        oip.parse_request(payload, FLOAT32, 10)
    assert info.value.status == 400
    broken = f'{{"x": {HUGE}, '  # still invalid JSON after the number: a 400, not a 500
    with pytest.raises(RequestError) as info:
        http.json_body(_request(broken))
    assert info.value.status == 400 and info.value.error == "invalid_json"


def test_bind_inputs_gives_each_feature_its_input_type() -> None:
    features = (FeatureSpec("a", "float"), FeatureSpec("n", "int"))
    tensor = InputPlan("tensor", (TensorInfo("input", (None, 2), "float"),))
    assert [f.dtype for f in bind_inputs(tensor, features)] == ["float", "float"]
    columns = InputPlan("columns", (TensorInfo("a", (None, 1), "double"),
                                    TensorInfo("n", (None, 1), "int32")))
    assert [f.dtype for f in bind_inputs(columns, features)] == ["double", "int32"]


def test_a_loaded_bundle_validates_against_its_float32_input(clf_bundle: ModelBundle) -> None:
    assert {f.dtype for f in clf_bundle.features} == {"float"}
    with pytest.raises(RequestError) as info:
        clf_bundle.predict({"instances": [ROW, ROW | {"c": 1e39}]})
    assert info.value.status == 422
    assert info.value.details == [{"row": 1, "field": "c", "problem": (
        "is outside the float32 range of the model's input (±3.4028234663852886e+38), "
        "got 1e+39")}]
    assert clf_bundle.predict({"instances": [ROW | {"c": 3.4e38}]})["predictions"]


def test_the_oip_route_applies_the_same_domain(clf_bundle: ModelBundle) -> None:
    def infer(data: list[Any], datatype: str = "FP32") -> Any:
        return oip.parse_request({"inputs": [{"name": "input", "shape": [2, 3],
                                              "datatype": datatype, "data": data}]},
                                 clf_bundle.features, 10)

    assert infer([1.0, 0.5, 0.0, 2.0, 0.5, 0.0])[0][1] == [2.0, 0.5, 0.0]
    for bad, datatype in ((1e39, "FP32"), (float("nan"), "FP64"), (OversizedNumber(HUGE), "FP32"),
                          (OversizedNumber(HUGE), "INT64")):
        with pytest.raises(RequestError) as info:
            infer([1, 0, 0, 2, 1, bad], datatype)
        assert info.value.status == 422, bad
        assert (info.value.details[0]["row"], info.value.details[0]["field"]) == (1, "c")


def test_a_non_finite_answer_is_a_500_with_a_reason(clf_bundle: ModelBundle,
                                                     reg_bundle: ModelBundle) -> None:
    rows = [[1.0, 0.5, 0.0], [1.0, None, 0.0]]  # "b" is nullable, the model answers NaN
    with pytest.raises(ModelOutputError) as info:
        clf_bundle.run(rows)
    err = info.value
    assert err.status == 500 and err.body() == {
        "error": "invalid_model_output",
        "message": "the model returned a non-finite probability for row 1; no answer can be "
                   "given for this input"}
    with pytest.raises(ModelOutputError, match="non-finite prediction for row 0"):
        reg_bundle.run([[1.0, None, 0.0]])


def test_a_non_finite_zipmap_probability_is_a_500(zipmap_bundle: ModelBundle) -> None:
    with pytest.raises(ModelOutputError, match="probability for row 0"):
        zipmap_bundle.run([[1.0, None, 0.0]])
    prediction = zipmap_bundle.run([[1.0, 0.5, 0.0]])
    assert isinstance(prediction, Prediction) and prediction.probabilities


def test_oversized_number_is_a_float_that_fails_every_range() -> None:
    big = OversizedNumber("-" + HUGE)
    assert big == float("-inf") and str(big) == "a number of 5001 digits"
    for dtype in ("float", "double", "float16", "int64"):
        spec = replace(FLOAT32[0], type="int" if dtype == "int64" else "float", dtype=dtype)
        assert _problem((spec,), big)["problem"].endswith("got a number of 5001 digits")
