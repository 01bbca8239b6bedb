"""Through the inference handler: numbers the model's float32 input cannot hold, non-finite
and 5,001-digit numbers are 422s naming the row and the field on the native and OIP routes,
and a non-finite answer of the model is a 500 with its reason, never a 200."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_inference_handler import CONTEXT, ROW, registry  # noqa: F401  (fixture)
from test_serving_handler import event

import handlers.inference as inference

ROUTE = "POST /tiny/predict"
HUGE = "9" * 5001


@pytest.fixture
def served(registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
           ) -> dict[str, Any]:
    monkeypatch.setenv("MLOPS_ROUTE", ROUTE)
    inference._cache.clear()
    return registry


def _native(body: str) -> tuple[int, dict[str, Any]]:
    resp = inference.handler(event(ROUTE, "/tiny/predict", body), CONTEXT)
    return resp["statusCode"], json.loads(resp["body"])


def _oip(data: str) -> tuple[int, dict[str, Any]]:
    tensor = '{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": ' + data + "}"
    body = '{"inputs": [' + tensor + "]}"
    resp = inference.handler(event("POST /v2/models/predict/infer", "/v2/models/predict/infer",
                                   body), CONTEXT)
    return resp["statusCode"], json.loads(resp["body"])


GOOD = json.dumps(ROW)


@pytest.mark.parametrize(("value", "problem"), [
    ("1e39", "is outside the float32 range of the model's input (±3.4028234663852886e+38), "
             "got 1e+39"),
    ("-3.5e38", "is outside the float32 range of the model's input (±3.4028234663852886e+38), "
                "got -3.5e+38"),
    ("1e400", "must be a finite number, got inf"),
    (HUGE, "is outside the float32 range of the model's input (±3.4028234663852886e+38), "
           "got a number of 5001 digits"),
    ("-" + HUGE + ".5", "must be a finite number, got -inf"),
])
def test_native_and_oip_reject_what_float32_cannot_hold(served: dict[str, Any], value: str,
                                                        problem: str) -> None:
    status, body = _native(f'{{"instances": [{GOOD}, {{"a": 1, "b": 0.5, "c": {value}}}]}}')
    assert status == 422, body
    assert body["error"] == "invalid_input"
    assert body["details"] == [{"row": 1, "field": "c", "problem": problem}]
    status, body = _native(f'{{"inputs": [[1, 0.5, 0], [1, 0.5, {value}]]}}')
    assert (status, body["details"][0]["row"], body["details"][0]["field"]) == (422, 1, "c")
    status, body = _oip(f"[1, 0.5, 0, 1, 0.5, {value}]")
    assert status == 422, body
    assert body["details"] == [{"row": 1, "field": "c", "problem": problem}]


def test_float32_extremes_are_answered(served: dict[str, Any]) -> None:
    status, body = _native('{"instances": [{"a": 1, "b": 0.5, "c": 3.4028234663852886e38}]}')
    assert status == 200, body
    status, body = _oip("[1, 0.5, 0, 1, 0.5, -3.4e38]")
    assert status == 200, body


def test_a_non_finite_answer_is_a_500_with_its_reason(served: dict[str, Any]) -> None:
    # "b" is nullable; the tiny LogisticRegression answers NaN probabilities without it
    status, body = _native(f'{{"instances": [{GOOD}, {{"a": 1, "c": 0}}]}}')
    assert status == 500
    assert body["error"] == "invalid_model_output" and body["request_id"] == "req-1"
    assert body["message"] == ("the model returned a non-finite probability for row 1; no "
                               "answer can be given for this input")
    status, body = _oip("[1, 0.5, 0, 1, null, 0]")
    assert status == 500 and body["error"] == "invalid_model_output"
