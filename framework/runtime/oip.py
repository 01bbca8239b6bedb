"""The Open Inference Protocol v2 (KServe / Triton / MLServer REST) over a ``ModelBundle``.

Routes (``{name}`` is the endpoint name, so two endpoints never collide):

- ``POST /v2/models/{name}/infer``: ``{"id"?, "parameters"?, "inputs": [tensor, ...],
  "outputs"?: [{"name"}]}`` where a tensor is ``{"name", "shape", "datatype", "data"}``;
- ``GET /v2/models/{name}``: model metadata (name, versions, platform, inputs, outputs);
- ``GET /v2/models/{name}/ready``: 200 when the model is loaded.

Two input forms are accepted: one 2-D tensor ``[N, n_features]`` in declared feature order
(any name; the metadata advertises the model's own input name), or one tensor per feature,
named like the feature, of shape ``[N]`` or ``[N, 1]`` (category features as ``BYTES``).
``data`` may be flat (row-major) or nested, or sent as binary tensor data after the JSON
header (``framework.runtime.oip_binary``). Values are then validated exactly like the native
format, so errors name the row and the feature. The answer is JSON, or binary for the outputs
the request asks so (``binary_data_output`` / ``binary_data``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from framework.runtime.errors import RequestError
from framework.runtime.features import FeatureSpec, Rows, validate_rows
from framework.runtime.inference import ModelBundle, Prediction
from framework.runtime.oip_binary import SHARED_MEMORY, Tail, binary_size, decode

INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
FLOAT_TYPES = ("FP16", "FP32", "FP64")
DATATYPES = frozenset({"BOOL", "BYTES", *INT_TYPES, *FLOAT_TYPES})
ONNX_TO_OIP = {
    "float": "FP32", "double": "FP64", "float16": "FP16", "int64": "INT64", "int32": "INT32",
    "int16": "INT16", "int8": "INT8", "uint64": "UINT64", "uint32": "UINT32",
    "uint16": "UINT16", "uint8": "UINT8", "bool": "BOOL", "string": "BYTES",
}
FEATURE_TO_OIP = {"float": "FP64", "int": "INT64", "bool": "BOOL", "category": "BYTES"}
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
TENSOR_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})
MAX_NESTING = 4


def _bad(message: str) -> RequestError:
    return RequestError.bad_request(message)


def parse_request(payload: object, features: Sequence[FeatureSpec], max_rows: int,
                  tail: Tail | None = None) -> tuple[Rows, str | None, list[str] | None]:
    """Validate an OIP v2 infer body; return (rows in feature order, id, requested outputs).

    ``tail`` is the binary data after the JSON header, when the request has one."""
    if not isinstance(payload, dict):
        raise _bad("the body must be a JSON object with 'inputs' (Open Inference Protocol v2)")
    unknown = sorted(str(k)[:40] for k in payload if k not in REQUEST_KEYS)
    if unknown:
        raise _bad(f"unknown key(s) {', '.join(repr(k) for k in unknown[:5])}; "
                   "allowed: id, parameters, inputs, outputs")
    req_id = payload.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise _bad("'id' must be a string")
    params = payload.get("parameters", {})
    if not isinstance(params, dict):
        raise _bad("'parameters' must be an object")
    _flag(params, "binary_data_output", "parameters.binary_data_output")
    tensors = payload.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise _bad("'inputs' must be a non-empty array of tensors")
    tail = tail or Tail(None)
    parsed = [_tensor(t, i, tail) for i, t in enumerate(tensors)]
    tail.finish()
    names = {f.name for f in features}
    if len(parsed) == 1 and parsed[0][0] not in names:
        rows = _from_matrix(parsed[0], len(features), max_rows)
    else:
        rows = _from_columns(parsed, features, max_rows)
    return validate_rows(rows, features), req_id, _requested(payload.get("outputs"))


def _requested(outputs: object) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise _bad("'outputs' must be an array of objects with a 'name'")
    for i, o in enumerate(outputs):
        params = o.get("parameters", {})
        if not isinstance(params, dict):
            raise _bad(f"outputs[{i}].parameters must be an object")
        _flag(params, "binary_data", f"outputs[{i}].parameters.binary_data")
        unsupported = [k for k in ("class_count", *SHARED_MEMORY) if k in params]
        if unsupported:
            raise _bad(f"outputs[{i}]: {unsupported[0]} is not supported here (no "
                       "classification or shared memory extension); omit it")
    return [str(o["name"]) for o in outputs]


def _flag(params: dict[str, Any], key: str, where: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise _bad(f"{where} must be true or false")
    return value


def binary_outputs(payload: dict[str, Any], names: Sequence[str]) -> set[str]:
    """Which of the answer's outputs go as binary data: an output's own
    ``parameters.binary_data`` if given, else the request's ``binary_data_output``
    (``payload`` has passed ``parse_request``)."""
    default = bool(payload.get("parameters", {}).get("binary_data_output", False))
    own = {str(o["name"]): o["parameters"]["binary_data"] for o in payload.get("outputs") or ()
           if "binary_data" in o.get("parameters", {})}
    return {n for n in names if own.get(n, default)}


Tensor = tuple[str, list[int], str, list[Any]]


def _tensor(t: object, i: int, tail: Tail) -> Tensor:
    if not isinstance(t, dict):
        raise _bad(f"inputs[{i}] must be an object with name, shape, datatype and data")
    params = t.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise _bad(f"inputs[{i}].parameters must be an object")
    size = binary_size(params, f"inputs[{i}]")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in t
               and (k != "data" or size is None)]
    if missing:
        raise _bad(f"inputs[{i}] lacks {', '.join(missing)}")
    extra = sorted(str(k)[:40] for k in t if k not in TENSOR_KEYS)
    if extra:
        raise _bad(f"inputs[{i}] has unknown key(s) {', '.join(repr(k) for k in extra[:5])}")
    name, shape, datatype = t["name"], t["shape"], t["datatype"]
    if not isinstance(name, str) or not name:
        raise _bad(f"inputs[{i}].name must be a non-empty string")
    label = f"input '{name[:40]}'"
    if (not isinstance(shape, list) or not shape or len(shape) > 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise _bad(f"{label}: shape must be [N] or [N, M] with non-negative integers")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise _bad(f"{label}: datatype must be one of {', '.join(sorted(DATATYPES))}")
    if size is not None:
        if "data" in t:
            raise _bad(f"{label}: give either data or parameters.binary_data_size, not both")
        return name, list(shape), datatype, decode(tail, label, datatype, shape, size)
    flat = _flatten(t["data"], label)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise _bad(f"{label}: shape {shape} needs {expected} values, data has {len(flat)}")
    for j, v in enumerate(flat):
        problem = _type_problem(v, datatype)
        if problem:
            raise _bad(f"{label}: data[{j}] {problem}")
    return name, list(shape), str(datatype), flat


def _flatten(data: object, label: str, depth: int = 0) -> list[Any]:
    if not isinstance(data, list):
        raise _bad(f"{label}: data must be an array")
    if depth > MAX_NESTING:
        raise _bad(f"{label}: data is nested too deeply")
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:
        if isinstance(v, list):
            out.extend(_flatten(v, label, depth + 1))
        else:
            out.append(v)
    return out


def _type_problem(v: object, datatype: str) -> str | None:
    if v is None:
        return None  # missing value: the feature decides whether it is allowed
    if datatype == "BOOL":
        return None if isinstance(v, bool) else "must be true or false for BOOL"
    if datatype == "BYTES":
        return None if isinstance(v, str) else "must be a string for BYTES"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"must be a number for {datatype}"
    if datatype in INT_TYPES and isinstance(v, float) and math.isfinite(v) and not v.is_integer():
        return f"must be an integer for {datatype}"
    return None


def _check_rows(n: int, max_rows: int) -> None:
    if n == 0:
        raise _bad("the batch is empty; send at least one row")
    if n > max_rows:
        raise RequestError(413, "payload_too_large",
                           f"{n} rows in one request; the limit is {max_rows}, split the batch")


def _from_matrix(t: Tensor, width: int, max_rows: int) -> list[Any]:
    name, shape, _dtype, flat = t
    if len(shape) == 1:
        if shape[0] != width:
            raise _bad(f"input '{name[:40]}' is not a feature name; as one tensor it must have "
                       f"shape [N, {width}] (or [{width}] for one row), got {shape}")
        shape = [1, width]
    if shape[1] != width:
        raise _bad(f"input '{name[:40]}' must have shape [N, {width}] (one value per declared "
                   f"feature, in order), got {shape}")
    _check_rows(shape[0], max_rows)
    return [flat[r * width:(r + 1) * width] for r in range(shape[0])]


def _from_columns(tensors: list[Tensor], features: Sequence[FeatureSpec], max_rows: int,
                  ) -> list[Any]:
    by_name: dict[str, Tensor] = {}
    for t in tensors:
        if t[0] in by_name:
            raise _bad(f"input '{t[0][:40]}' is given twice")
        by_name[t[0]] = t
    declared = {f.name for f in features}
    unknown = [n for n in by_name if n not in declared]
    if unknown:
        raise _bad(f"input(s) {', '.join(repr(n[:40]) for n in unknown[:5])} are not declared "
                   "features; send one tensor per feature or one [N, n_features] tensor")
    missing = [f.name for f in features if f.name not in by_name and not f.nullable]
    if missing:
        raise _bad(f"missing input(s) for feature(s) {', '.join(missing[:8])}")
    n: int | None = None
    for name, shape, _dtype, _flat in by_name.values():
        if len(shape) == 2 and shape[1] != 1:
            raise _bad(f"input '{name}' must have shape [N] or [N, 1], got {shape}")
        if n is not None and shape[0] != n:
            raise _bad(f"input '{name}' has {shape[0]} rows, other inputs have {n}")
        n = shape[0]
    assert n is not None
    _check_rows(n, max_rows)
    columns = [by_name[f.name][3] if f.name in by_name else [None] * n for f in features]
    return [[col[r] for col in columns] for r in range(n)]


def _datatype(values: list[Any]) -> str:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "BOOL"
    if isinstance(sample, int):
        return "INT64"
    if isinstance(sample, float):
        return "FP64"
    return "BYTES"


def response(bundle: ModelBundle, endpoint: str, prediction: Prediction, req_id: str | None,
             request_id: str | None, wanted: list[str] | None) -> dict[str, Any]:
    """The OIP v2 infer response: label tensor [N], probabilities [N, n_classes]."""
    n = len(prediction.labels)
    outputs: list[dict[str, Any]] = [{
        "name": bundle.outputs.label, "shape": [n],
        "datatype": _label_datatype(bundle, prediction.labels), "data": prediction.labels,
    }]
    if prediction.probabilities is not None and bundle.outputs.probabilities is not None:
        width = len(prediction.probabilities[0]) if prediction.probabilities else 0
        outputs.append({
            "name": bundle.outputs.probabilities, "shape": [n, width], "datatype": "FP32",
            "data": [p for row in prediction.probabilities for p in row],
        })
    if wanted is not None:
        known = {o["name"] for o in outputs}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise _bad(f"unknown output(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
                       f"the model has {', '.join(sorted(known))}")
        outputs = [o for o in outputs if o["name"] in wanted]
    out: dict[str, Any] = {"model_name": endpoint, "model_version": bundle.version,
                           "outputs": outputs, "parameters": {"request_id": request_id}}
    if prediction.classes is not None:
        out["parameters"]["classes"] = prediction.classes
    if req_id is not None:
        out["id"] = req_id
    return out


def metadata(bundle: ModelBundle, endpoint: str) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the tensors a client sends and receives."""
    if bundle.inputs.layout == "tensor":
        t = bundle.inputs.inputs[0]
        inputs = [{"name": t.name, "datatype": ONNX_TO_OIP.get(t.type, "FP32"),
                   "shape": [-1, len(bundle.features)]}]
    else:
        inputs = [{"name": f.name, "datatype": FEATURE_TO_OIP[f.type], "shape": [-1]}
                  for f in bundle.features]
    outputs = [{"name": bundle.outputs.label, "datatype": _label_datatype(bundle, None),
                "shape": [-1]}]
    if bundle.outputs.probabilities is not None:
        outputs.append({"name": bundle.outputs.probabilities, "datatype": "FP32",
                        "shape": [-1, len(bundle.classes or [])]})
    return {
        "name": endpoint,
        "versions": [bundle.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"model": bundle.name, "task": bundle.task,
                       "features": [f.name for f in bundle.features]},
    }


def _label_datatype(bundle: ModelBundle, labels: list[Any] | None) -> str:
    """The label output's datatype: its ONNX element type (so metadata and answers agree, and
    binary data has the model's width), else guessed from the values."""
    label = bundle.outputs.label
    kind = next((str(o.type) for o in bundle.session.get_outputs() if o.name == label), "")
    known = ONNX_TO_OIP.get(kind[7:-1]) if kind.startswith("tensor(") else None
    if known is not None:
        return known
    return _datatype(labels if labels is not None else list(bundle.classes or ()))
