"""The OIP binary tensor data extension: requests framed by ``Inference-Header-Content-Length``
(encoded here by tritonclient's own request builder) decode to the same rows as JSON ``data``
and pass the same checks; binary answers decode with tritonclient's response parser; sizes and
headers that do not add up are a 400 naming the input (the Lambda contract, base64 events in
and out: tests/handlers/test_oip_binary_handler.py)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np
import pytest
from tinymodels import metadata
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from framework.runtime import http, oip, oip_binary
from framework.runtime.errors import RequestError
from framework.runtime.inference import ModelBundle

ROW = [1.0, 0.5, -0.25]  # exact in float32


# -- tiny models with INT64 and FP64 inputs (onnx.helper, no training) --------------------
def _onnx(nodes: list[Any], inputs: list[Any], outputs: list[Any]) -> bytes:
    from onnx import helper

    graph = helper.make_graph(nodes, "tiny", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def int_tensor_model(width: int = 64) -> tuple[bytes, dict[str, Any]]:
    """One INT64 (or INT32) input [N, 2] (int features x, y); its answer is x + y."""
    from onnx import TensorProto, helper

    elem = TensorProto.INT64 if width == 64 else TensorProto.INT32

    zero = helper.make_tensor("zero", TensorProto.INT64, [], [0])
    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    raw = _onnx([helper.make_node("Constant", [], ["i0"], value=zero),
                 helper.make_node("Constant", [], ["i1"], value=one),
                 helper.make_node("Gather", ["input", "i0"], ["x"], axis=1),
                 helper.make_node("Gather", ["input", "i1"], ["y"], axis=1),
                 helper.make_node("Add", ["x", "y"], ["variable"])],
                [helper.make_tensor_value_info("input", elem, [None, 2])],
                [helper.make_tensor_value_info("variable", elem, [None])])
    features = [{"name": "x", "type": "int"}, {"name": "y", "type": "int"}]
    return raw, metadata(f"sum-int{width}", raw, features, task="regression")


def fp64_columns_model() -> tuple[bytes, dict[str, Any]]:
    """Two column inputs, 'amount' FP64 [N, 1] and 'count' INT64 [N, 1]; the answer is
    amount * count (FP64)."""
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [-1])
    raw = _onnx([helper.make_node("Cast", ["count"], ["n"], to=TensorProto.DOUBLE),
                 helper.make_node("Mul", ["amount", "n"], ["product"]),
                 helper.make_node("Constant", [], ["shape"], value=shape),
                 helper.make_node("Reshape", ["product", "shape"], ["variable"])],
                [helper.make_tensor_value_info("amount", TensorProto.DOUBLE, [None, 1]),
                 helper.make_tensor_value_info("count", TensorProto.INT64, [None, 1])],
                [helper.make_tensor_value_info("variable", TensorProto.DOUBLE, [None])])
    features = [{"name": "amount", "type": "float", "min": 0},
                {"name": "count", "type": "int", "min": 0}]
    return raw, metadata("mul-f64", raw, features, task="regression")


def _bundle(built: tuple[bytes, dict[str, Any]]) -> ModelBundle:
    raw, meta = built
    return ModelBundle.from_bytes(meta, raw, str(meta["sha256"]))


@pytest.fixture(scope="module")
def int_bundle() -> ModelBundle:
    return _bundle(int_tensor_model())


@pytest.fixture(scope="module")
def int32_bundle() -> ModelBundle:
    return _bundle(int_tensor_model(32))


@pytest.fixture(scope="module")
def f64_bundle() -> ModelBundle:
    return _bundle(fp64_columns_model())


# -- helpers ------------------------------------------------------------------------------
def tensor(name: str, values: np.ndarray, datatype: str, binary: bool = True) -> InferInput:
    t = InferInput(name, list(values.shape), datatype)
    t.set_data_from_numpy(values, binary_data=binary)
    return t


def framed(inputs: list[InferInput], outputs: list[InferRequestedOutput] | None = None,
           ) -> http.Request:
    """The request tritonclient sends for ``inputs``: body and headers as on the wire."""
    body, json_size = InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    headers = {} if json_size is None else {oip_binary.HEADER: str(json_size)}
    return http.Request("POST", "/v2/models/ep/infer", headers, body)


def parse(bundle: ModelBundle, request: http.Request) -> tuple[Any, list[list[Any]]]:
    payload, tail = oip_binary.read_body(request)
    rows, _, _ = oip.parse_request(payload, bundle.features, 10, tail)
    return payload, rows


def error(bundle: ModelBundle, request: http.Request) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse(bundle, request)
    return info.value


def raw_request(header: dict[str, Any], data: bytes, length: str | None = None,
                ) -> http.Request:
    text = json.dumps(header).encode()
    size = str(len(text)) if length is None else length
    return http.Request("POST", "/", {oip_binary.HEADER: size}, text + data)


# -- requests: round trips ----------------------------------------------------------------
def test_fp32_matrix_decodes_to_the_rows_json_gives(clf_bundle: ModelBundle) -> None:
    values = np.array([ROW, [2.0, -1.5, 3.0]], dtype=np.float32)
    payload, rows = parse(clf_bundle, framed([tensor("input", values, "FP32")]))
    assert payload["inputs"][0]["parameters"] == {"binary_data_size": 24}
    assert "data" not in payload["inputs"][0]
    json_rows = parse(clf_bundle, framed([tensor("input", values, "FP32", binary=False)]))[1]
    assert rows == json_rows == values.tolist()
    assert clf_bundle.run(rows).labels == clf_bundle.run(json_rows).labels


def test_fp64_and_int64_columns(f64_bundle: ModelBundle) -> None:
    amount = np.array([[0.1], [2.5], [1e300]], dtype=np.float64)
    count = np.array([[3], [0], [1]], dtype=np.int64)
    _, rows = parse(f64_bundle, framed([tensor("amount", amount, "FP64"),
                                        tensor("count", count, "INT64")]))
    assert rows == [[0.1, 3], [2.5, 0], [1e300, 1]]
    assert [type(v) for v in rows[0]] == [float, int]
    assert f64_bundle.run(rows).labels == pytest.approx([0.3, 0.0, 1e300])


def test_int64_matrix_keeps_every_bit(int_bundle: ModelBundle) -> None:
    big = 2**62 + 1  # not representable as a float64
    values = np.array([[big, 2], [-5, 7]], dtype=np.int64)
    _, rows = parse(int_bundle, framed([tensor("input", values, "INT64")]))
    assert rows == [[big, 2], [-5, 7]]
    assert int_bundle.run(rows).labels == [big + 2, 2]


def test_bytes_and_fp32_columns(cols_bundle: ModelBundle) -> None:
    color = np.array([["red"], ["blue"]], dtype=np.object_)
    size = np.array([[0.5], [-1.0]], dtype=np.float32)
    _, rows = parse(cols_bundle, framed([tensor("color", color, "BYTES"),
                                         tensor("size", size, "FP32")]))
    assert rows == [["red", 0.5], ["blue", -1.0]]


def test_binary_and_json_inputs_mix_in_one_request(cols_bundle: ModelBundle) -> None:
    color = np.array([["green"]], dtype=np.object_)
    size = np.array([[2.0]], dtype=np.float32)
    request = framed([tensor("color", color, "BYTES", binary=False),
                      tensor("size", size, "FP32")])
    assert parse(cols_bundle, request)[1] == [["green", 2.0]]


@pytest.mark.parametrize(("datatype", "dtype"), [("INT32", np.int32), ("FP16", np.float16),
                                                 ("UINT8", np.uint8), ("INT16", np.int16)])
def test_other_widths(clf_bundle: ModelBundle, datatype: str, dtype: Any) -> None:
    values = np.array([[1, 0, 3]], dtype=dtype)
    assert parse(clf_bundle, framed([tensor("input", values, datatype)]))[1] == [[1.0, 0.0, 3.0]]


# -- requests: the same value checks as JSON (422 naming row and field) --------------------
def test_fp64_beyond_float32_is_422_naming_row_and_field(clf_bundle: ModelBundle) -> None:
    values = np.array([ROW, [1.0, 1e39, 0.0]], dtype=np.float64)
    e = error(clf_bundle, framed([tensor("input", values, "FP64")]))
    assert e.status == 422 and e.details[0]["row"] == 1 and e.details[0]["field"] == "b"
    assert "outside the float32 range" in e.details[0]["problem"]


def test_non_finite_and_declared_bounds_are_422(clf_bundle: ModelBundle) -> None:
    values = np.array([[np.nan, 0.0, 0.0], [-1.0, 0.0, np.inf]], dtype=np.float32)
    e = error(clf_bundle, framed([tensor("input", values, "FP32")]))
    assert e.status == 422
    assert [(d["row"], d["field"]) for d in e.details] == [(0, "a"), (1, "a"), (1, "c")]
    assert e.details[1]["problem"] == "must be >= 0, got -1.0"


def test_unknown_category_in_bytes_is_422(cols_bundle: ModelBundle) -> None:
    color = np.array([["red"], ["mauve"]], dtype=np.object_)
    size = np.array([[0.5], [1.0]], dtype=np.float32)
    e = error(cols_bundle, framed([tensor("color", color, "BYTES"), tensor("size", size, "FP32")]))
    assert e.status == 422 and (e.details[0]["row"], e.details[0]["field"]) == (1, "color")


def test_int64_beyond_an_int32_model_input_is_422(int32_bundle: ModelBundle) -> None:
    values = np.array([[1, 2], [2**31, -(2**31)]], dtype=np.int64)
    e = error(int32_bundle, framed([tensor("input", values, "INT64")]))
    assert e.status == 422 and [(d["row"], d["field"]) for d in e.details] == [(1, "x")]
    assert e.details[0]["problem"] == ("is outside the int32 range of the model's input "
                                       "(-2147483648..2147483647), got 2147483648")
    values = np.array([[2**31 - 1, -(2**31)]], dtype=np.int32)
    _, rows = parse(int32_bundle, framed([tensor("input", values, "INT32")]))
    assert rows == [[2**31 - 1, -(2**31)]] and int32_bundle.run(rows).labels == [-1]


def test_a_fraction_for_an_int_feature_is_422(f64_bundle: ModelBundle) -> None:
    # a FP64 value sent for the int feature 'count' is checked as the int it must be
    amount = np.array([[1.0]], dtype=np.float64)
    count = np.array([[1.5]], dtype=np.float64)
    e = error(f64_bundle, framed([tensor("amount", amount, "FP64"),
                                  tensor("count", count, "FP64")]))
    assert e.status == 422 and e.details[0]["field"] == "count"
    assert "integer" in e.details[0]["problem"]


# -- requests: framing errors are 400 naming the input -------------------------------------
def _fp32(shape: list[int], size: int) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32",
                        "parameters": {"binary_data_size": size}}]}


@pytest.mark.parametrize(("header", "data", "text"), [
    (_fp32([1, 3], 8), b"\0" * 8, "input 'input': binary_data_size is 8 bytes; shape [1, 3] "
                                  "of FP32 needs 12"),
    (_fp32([1, 3], 12), b"\0" * 8, "input 'input': binary_data_size is 12 bytes but only 8"),
    (_fp32([1, 3], 12), b"\0" * 13, "1 bytes of binary data follow the last input"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": ROW}]},
     b"\0" * 4, "4 bytes of binary data follow"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": ROW,
                  "parameters": {"binary_data_size": 12}}]}, b"\0" * 12, "not both"),
    (_fp32([1, 3], -12), b"", "binary_data_size must be a non-negative integer"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                  "parameters": {"binary_data_size": "12"}}]}, b"\0" * 12,
     "binary_data_size must be a non-negative integer"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                  "parameters": {"shared_memory_region": "r"}}]}, b"", "shared memory"),
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "BF16",
                  "parameters": {"binary_data_size": 6}}]}, b"\0" * 6, "datatype must be"),
])
def test_size_mismatches_are_400_naming_the_input(clf_bundle: ModelBundle, header: Any,
                                                  data: bytes, text: str) -> None:
    e = error(clf_bundle, raw_request(header, data))
    assert e.status == 400 and text in e.message, e.message


def _bytes_tensor(size: int) -> dict[str, Any]:
    return {"inputs": [{"name": "color", "shape": [2], "datatype": "BYTES",
                        "parameters": {"binary_data_size": size}},
                       {"name": "size", "shape": [2], "datatype": "FP64", "data": [1, 2]}]}


def _strings(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


@pytest.mark.parametrize(("data", "text"), [
    (_strings(b"red"), "holds 1 BYTES elements; shape [2] needs 2"),
    (_strings(b"red", b"blue", b"red"), "follow the 2 BYTES elements of shape [2]"),
    (_strings(b"red") + b"\x05\0", "element 1 is cut short"),
    (_strings(b"red") + struct.pack("<I", 99) + b"blue", "element 1 says 99 bytes, only 4"),
    (_strings(b"red", b"\xff\xfe"), "element 1 is not UTF-8"),
])
def test_bytes_framing_errors(cols_bundle: ModelBundle, data: bytes, text: str) -> None:
    e = error(cols_bundle, raw_request(_bytes_tensor(len(data)), data))
    assert e.status == 400 and "input 'color'" in e.message and text in e.message, e.message


def test_bool_bytes_must_be_0_or_1() -> None:
    tail = oip_binary.Tail(bytes([1, 0, 2]))
    with pytest.raises(RequestError, match="element 2 is 2"):
        oip_binary.decode(tail, "input 'x'", "BOOL", [3], 3)
    assert oip_binary.decode(oip_binary.Tail(bytes([1, 0])), "x", "BOOL", [2], 2) == [True, False]


@pytest.mark.parametrize("length", ["-5", "abc", "1.5", "", "+3", "0", "12,12", "9" * 20,
                                    "\u0661\u0662"])
def test_bad_header_lengths_are_400(clf_bundle: ModelBundle, length: str) -> None:
    e = error(clf_bundle, raw_request(_fp32([1, 3], 12), b"\0" * 12, length))
    assert e.status == 400 and "Inference-Header-Content-Length" in e.message, e.message


def test_header_longer_than_the_body_is_400(clf_bundle: ModelBundle) -> None:
    request = raw_request(_fp32([1, 3], 12), b"\0" * 12)
    too_long = http.Request("POST", "/", {oip_binary.HEADER: str(len(request.body) + 1)},
                            request.body)
    e = error(clf_bundle, too_long)
    assert e.status == 400 and f"between 1 and the body's {len(request.body)}" in e.message


def test_truncated_header_is_invalid_json(clf_bundle: ModelBundle) -> None:
    request = raw_request(_fp32([1, 3], 12), b"\0" * 12)
    n = len(request.body) - 12 - 5  # the JSON header cut 5 bytes short
    e = error(clf_bundle, http.Request("POST", "/", {oip_binary.HEADER: str(n)}, request.body))
    assert e.status == 400 and e.error == "invalid_json"
    assert e.message.startswith(f"the inference header (first {n} bytes) is not valid JSON")


def test_binary_size_without_the_header_is_400(clf_bundle: ModelBundle) -> None:
    body = json.dumps(_fp32([1, 3], 12)).encode()
    request = http.Request("POST", "/", {"content-type": "application/json"}, body)
    e = error(clf_bundle, request)
    assert e.status == 400 and "needs the binary tensor data extension" in e.message


def test_content_type_is_read_only_without_the_header(clf_bundle: ModelBundle) -> None:
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                                   "data": ROW}]}).encode()
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert error(clf_bundle, http.Request("POST", "/", form, body)).status == 415
    framed_form = {**form, oip_binary.HEADER: str(len(body))}
    assert parse(clf_bundle, http.Request("POST", "/", framed_form, body))[1] == [ROW]
    octets = {"content-type": "application/octet-stream"}  # the whole body is the header
    assert parse(clf_bundle, http.Request("POST", "/", octets, body))[1] == [ROW]


@pytest.mark.parametrize(("parameters", "text"), [
    ({"binary_data_output": "yes"}, "parameters.binary_data_output must be true or false"),
])
def test_request_parameters_are_checked(clf_bundle: ModelBundle, parameters: dict[str, Any],
                                        text: str) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": ROW}],
            "parameters": parameters}
    with pytest.raises(RequestError, match=text):
        oip.parse_request(body, clf_bundle.features, 10)


@pytest.mark.parametrize(("output", "text"), [
    ({"name": "label", "parameters": {"binary_data": 1}}, "binary_data must be true or false"),
    ({"name": "label", "parameters": {"class_count": 2}}, "class_count is not supported"),
    ({"name": "label", "parameters": []}, "outputs[0].parameters must be an object"),
])
def test_output_parameters_are_checked(clf_bundle: ModelBundle, output: dict[str, Any],
                                       text: str) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": ROW}],
            "outputs": [output]}
    with pytest.raises(RequestError) as info:
        oip.parse_request(body, clf_bundle.features, 10)
    assert info.value.status == 400 and text in info.value.message


# -- answers ------------------------------------------------------------------------------
def _answer(bundle: ModelBundle, payload: dict[str, Any], rows: list[list[Any]],
            ) -> tuple[dict[str, Any], set[str]]:
    answer = oip.response(bundle, "ep", bundle.run(rows), None, "rid", None)
    binary = oip.binary_outputs(payload, [o["name"] for o in answer["outputs"]])
    return answer, binary


def _decoded(answer: dict[str, Any], binary: set[str]) -> Any:
    """The answer as API Gateway returns it, parsed by tritonclient."""
    response = http.binary_response(200, oip_binary.binary_answer(answer, binary))
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "application/octet-stream"
    body = base64.b64decode(response["body"])
    length = int(response["headers"]["inference-header-content-length"])
    assert json.loads(body[:length])["model_name"] == "ep"
    return InferenceServerClient.parse_response_body(body, header_length=length)


@pytest.mark.parametrize("fixture", ["clf_bundle", "zipmap_bundle", "reg_bundle"])
def test_binary_answers_decode_in_tritonclient(request: pytest.FixtureRequest,
                                               fixture: str) -> None:
    bundle: ModelBundle = request.getfixturevalue(fixture)
    values = np.array([ROW, [9.0, -2.0, 1.0]], dtype=np.float32)
    payload, rows = parse(bundle, framed([tensor("input", values, "FP32")]))
    answer, binary = _answer(bundle, payload, rows)
    assert binary == {o["name"] for o in answer["outputs"]}  # binary_data_output: true
    result = _decoded(answer, binary)
    for output in answer["outputs"]:
        got = result.as_numpy(output["name"])
        want = output["data"]
        if output["datatype"] == "BYTES":
            assert [b.decode() for b in got.ravel()] == want
        else:
            assert got.ravel().tolist() == pytest.approx(want, rel=1e-7)
        assert result.get_output(output["name"])["datatype"] == output["datatype"]


def test_int64_and_fp64_answers_keep_their_width(int_bundle: ModelBundle,
                                                 f64_bundle: ModelBundle) -> None:
    big = 2**62 + 1
    payload, rows = parse(int_bundle, framed([tensor("input", np.array(
        [[big, 2]], dtype=np.int64), "INT64")]))
    answer, binary = _answer(int_bundle, payload, rows)
    assert answer["outputs"][0]["datatype"] == "INT64"
    assert _decoded(answer, binary).as_numpy("variable").tolist() == [big + 2]
    payload, rows = parse(f64_bundle, framed([
        tensor("amount", np.array([[0.1]]), "FP64"),
        tensor("count", np.array([[3]], dtype=np.int64), "INT64")]))
    answer, binary = _answer(f64_bundle, payload, rows)
    assert answer["outputs"][0]["datatype"] == "FP64"
    assert oip.metadata(f64_bundle, "ep")["outputs"][0]["datatype"] == "FP64"
    assert _decoded(answer, binary).as_numpy("variable").tolist() == [0.1 * 3]


def test_per_output_binary_overrides_the_request_default(clf_bundle: ModelBundle) -> None:
    label, proba = clf_bundle.outputs.label, clf_bundle.outputs.probabilities
    assert proba is not None
    values = np.array([ROW], dtype=np.float32)
    outputs = [InferRequestedOutput(label, binary_data=False),
               InferRequestedOutput(proba, binary_data=True)]
    payload, rows = parse(clf_bundle, framed([tensor("input", values, "FP32")], outputs))
    answer, binary = _answer(clf_bundle, payload, rows)
    assert binary == {proba}
    result = _decoded(answer, binary)
    header = result.get_response()
    assert header["outputs"][0]["data"] == answer["outputs"][0]["data"]  # JSON in the header
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 8}
    assert result.as_numpy(proba).tolist() == [pytest.approx(answer["outputs"][1]["data"])]
    # all JSON when nothing asks for binary
    outputs = [InferRequestedOutput(label, binary_data=False)]
    payload, rows = parse(clf_bundle, framed([tensor("input", values, "FP32")], outputs))
    assert _answer(clf_bundle, payload, rows)[1] == set()
