"""An OpenAPI 3.1 document per endpoint, generated from the declared features.

Served at ``GET <route>/openapi.json``. It describes every route of the endpoint — the native
route (every body form it accepts), the feedback route, this document, the Open Inference
Protocol v2 model routes and the server's health probes — with the endpoint's auth scheme and
every status each route answers, so client generators and fuzzers (schemathesis) work from it.
Number fields carry the bounds the model accepts: the declared ``min``/``max`` within the
range of the model input's element type (float32: at most 3.4028234663852886e38 in
magnitude).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framework.runtime.capture import MAX_FEEDBACK
from framework.runtime.features import FeatureSpec

ERROR_STATUSES = {
    "400": "Malformed request (shape, JSON)",
    "413": "Too many rows or too large a body",
    "409": "This endpoint captures no predictions, so it collects no labels",
    "415": "Content type is not JSON",
    "422": "Invalid values; details name the row and the field",
    "500": "The model answered a non-finite value (or an unexpected error); the message says",
    "503": "The model cannot be served now",
}
AUTH_STATUSES = {
    "api_key": {"401": "Missing or unknown API key",
                "403": "Revoked key, or a key of another endpoint"},
    "iam": {"403": "Missing or invalid AWS Signature Version 4 (answered by API Gateway)"},
}
ERROR = {"$ref": "#/components/schemas/Error"}
GATEWAY_ERROR = {"type": "object", "required": ["message"],
                 "properties": {"message": {"type": "string"}}}
INFER_HEADER = "Inference-Header-Content-Length"
BINARY = {"type": "string", "format": "binary"}
BINARY_EXTENSION = (
    "Inputs as JSON `data`, or with the binary tensor data extension: the header "
    "`Inference-Header-Content-Length: N` says the first N bytes of the body are the JSON "
    "request, in which each binary input has `parameters.binary_data_size` instead of `data`; "
    "their raw data follows in the order of `inputs` (little-endian, row-major; BYTES "
    "elements each after a 4-byte little-endian length). The answer is binary "
    "(`application/octet-stream`, with `Inference-Header-Content-Length`) for the outputs "
    "asked so by `parameters.binary_data_output: true` or an output's "
    "`parameters.binary_data: true`; JSON otherwise.")
DATATYPES = ["BOOL", "BYTES", "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64",
             "UINT8", "UINT16", "UINT32", "UINT64"]


def feature_schema(f: FeatureSpec) -> dict[str, Any]:
    """The JSON Schema of one feature's value, bounds included."""
    schema: dict[str, Any]
    if f.type == "category":
        schema = {"type": "string", "enum": list(f.values or ())}
    elif f.type == "bool":
        schema = {"type": "boolean"}
    else:
        schema = {"type": "integer" if f.type == "int" else "number"}
        low, high = f.bounds()
        if low is not None:
            schema["minimum"] = low
        if high is not None:
            schema["maximum"] = high
    if f.nullable:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], auth: str, codes: Sequence[str]) -> dict[str, Any]:
    """``ok`` (the 2xx answers), the listed error statuses and the auth statuses."""
    out = dict(ok)
    for code in codes:
        out[code] = {"description": ERROR_STATUSES[code], **_json(ERROR)}
    for code, text in AUTH_STATUSES.get(auth, {}).items():
        out[code] = {"description": text, **_json(GATEWAY_ERROR if auth == "iam" else ERROR)}
    return out


def _rows_schema(item: dict[str, Any], max_rows: int) -> dict[str, Any]:
    """A batch of ``item`` (1..max_rows), or one ``item`` alone (a batch of one)."""
    return {"anyOf": [{"type": "array", "minItems": 1, "maxItems": max_rows, "items": item},
                      item]}


def document(*, endpoint: str, route: str, model: str, version: str, task: str,
             features: Sequence[FeatureSpec], classes: Sequence[Any] | None, max_rows: int,
             auth: str, server_url: str = "/") -> dict[str, Any]:
    method, _, path = route.partition(" ")
    n = len(features)
    instance = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: feature_schema(f) for f in features},
        "required": [f.name for f in features if not f.nullable],
    }
    row = {"type": "array", "minItems": n, "maxItems": n,
           "prefixItems": [feature_schema(f) for f in features], "items": False,
           "description": "values in feature order: " + ", ".join(f.name for f in features)}
    label: dict[str, Any] = {"type": "number"} if task == "regression" else {}
    if classes:
        label = {"enum": list(classes)}
    instance_ref = {"$ref": "#/components/schemas/Instance"}
    row_ref = {"$ref": "#/components/schemas/Row"}
    predict_request = {"oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["instances"],
         "properties": {"instances": _rows_schema(instance_ref, max_rows)}},
        {"type": "object", "additionalProperties": False, "required": ["inputs"],
         "properties": {"inputs": _rows_schema(row_ref, max_rows)}},
    ]}
    predict_response = {"type": "object", "required": ["predictions", "model", "version"],
                        "properties": {
                            "predictions": {"type": "array", "items": label},
                            "probabilities": {"type": "array", "items": {
                                "type": "array", "items": {"type": "number"}}},
                            "classes": {"type": "array"},
                            "model": {"type": "string", "example": model},
                            "version": {"type": "string", "example": version},
                            "request_id": {"type": "string"}}}
    feedback_item = {"type": "object", "additionalProperties": False,
                     "required": ["request_id", "label"],
                     "properties": {"request_id": {"type": "string", "minLength": 1,
                                                   "maxLength": 128},
                                    "row": {"type": "integer", "minimum": 0, "maximum": 999_999,
                                            "default": 0},
                                    "label": label or {"type": ["string", "number", "boolean"]}}}
    tensor_in = {"type": "object", "additionalProperties": False,
                 "required": ["name", "shape", "datatype", "data"],
                 "properties": {"name": {"type": "string", "minLength": 1},
                                "shape": {"type": "array", "minItems": 1, "maxItems": 2,
                                          "items": {"type": "integer", "minimum": 0}},
                                "datatype": {"type": "string", "enum": DATATYPES},
                                "data": {"type": "array", "description": (
                                    "flat (row-major) or nested; each value within the bounds "
                                    "of its feature (see Instance)")},
                                "parameters": {"type": "object"}}}
    tensor_out = {"type": "object", "required": ["name", "shape", "datatype", "data"],
                  "properties": {"name": {"type": "string"},
                                 "shape": {"type": "array", "items": {"type": "integer"}},
                                 "datatype": {"type": "string", "enum": DATATYPES},
                                 "data": {"type": "array"}}}
    infer_request = {"type": "object", "additionalProperties": False, "required": ["inputs"],
                     "properties": {
                         "id": {"type": "string"}, "parameters": {"type": "object"},
                         "inputs": {"type": "array", "minItems": 1, "items": tensor_in},
                         "outputs": {"type": "array", "items": {
                             "type": "object", "required": ["name"],
                             "properties": {"name": {"type": "string"}}}}}}
    infer_response = {"type": "object", "required": ["model_name", "model_version", "outputs"],
                      "properties": {"model_name": {"type": "string"},
                                     "model_version": {"type": "string"},
                                     "id": {"type": "string"},
                                     "outputs": {"type": "array", "items": tensor_out},
                                     "parameters": {"type": "object"}}}
    metadata_tensor = {"type": "object", "required": ["name", "datatype", "shape"],
                       "properties": {"name": {"type": "string"},
                                      "datatype": {"type": "string", "enum": DATATYPES},
                                      "shape": {"type": "array", "items": {"type": "integer"}}}}
    metadata = {"type": "object", "required": ["name", "versions", "platform", "inputs",
                                               "outputs"],
                "properties": {"name": {"type": "string"},
                               "versions": {"type": "array", "items": {"type": "string"}},
                               "platform": {"type": "string"},
                               "inputs": {"type": "array", "items": metadata_tensor},
                               "outputs": {"type": "array", "items": metadata_tensor},
                               "parameters": {"type": "object"}}}
    body_errors = ("400", "413", "415", "422", "500", "503")

    def ok(code: str, text: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {code: {"description": text, **_json(schema)}}

    def get(operation: str, summary: str, schema: dict[str, Any], public: bool = False,
            ) -> dict[str, Any]:
        op: dict[str, Any] = {"operationId": operation, "summary": summary,
                              "responses": _responses(ok("200", summary, schema),
                                                      "none" if public else auth, ("503",))}
        if public:
            op["security"] = []
        return {"get": op}

    v2 = f"/v2/models/{endpoint}"
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"{endpoint}: {model} {version}", "version": version,
                 "description": f"Predictions of model {model} ({task}); at most {max_rows} "
                                "rows per request."},
        "servers": [{"url": server_url}],
        "paths": {
            path: {method.lower(): {
                "operationId": "predict", "summary": "Predict",
                "requestBody": {"required": True, **_json(predict_request)},
                "responses": _responses(ok("200", "Predictions", predict_response), auth,
                                        body_errors)}},
            f"{path}/feedback": {"post": {
                "operationId": "feedback", "summary": "Ground-truth labels by request id",
                "requestBody": {"required": True, **_json({"anyOf": [
                    {"type": "array", "minItems": 1, "maxItems": MAX_FEEDBACK,
                     "items": feedback_item}, feedback_item]})},
                "responses": _responses(ok("202", "Stored", {
                    "type": "object", "required": ["accepted"],
                    "properties": {"accepted": {"type": "integer"},
                                   "request_id": {"type": "string"}}}), auth,
                    ("400", "409", "413", "415", "422", "503"))}},
            f"{path}/openapi.json": get("openapi", "This document", {"type": "object"}),
            f"{v2}/infer": {"post": {
                "operationId": "oipInfer", "summary": "Open Inference Protocol v2 infer",
                "description": BINARY_EXTENSION,
                "parameters": [{"name": INFER_HEADER, "in": "header", "required": False,
                                "description": "Length in bytes of the JSON inference header "
                                               "at the start of the body (binary tensor data "
                                               "follows it)",
                                "schema": {"type": "integer", "minimum": 1}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": infer_request},
                    "application/octet-stream": {"schema": BINARY}}},
                "responses": _responses({"200": {
                    "description": "Output tensors: JSON, or the JSON header and the raw "
                                   "data of the outputs asked as binary",
                    "headers": {INFER_HEADER: {
                        "description": "Length in bytes of the JSON header (binary answers)",
                        "schema": {"type": "integer", "minimum": 1}}},
                    "content": {"application/json": {"schema": infer_response},
                                "application/octet-stream": {"schema": BINARY}}}},
                    auth, body_errors)}},
            v2: get("oipMetadata", "Model metadata", metadata),
            f"{v2}/ready": get("oipReady", "Readiness", {
                "type": "object", "required": ["name", "ready"],
                "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}),
            "/v2/health/live": get("oipLive", "Liveness", {
                "type": "object", "required": ["live"],
                "properties": {"live": {"type": "boolean"}}}, public=True),
            "/v2/health/ready": get("oipServerReady", "Server readiness", {
                "type": "object", "required": ["ready"],
                "properties": {"ready": {"type": "boolean"}}}, public=True),
        },
        "components": {"schemas": {
            "Instance": instance,
            "Row": row,
            "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "properties": {
                    "row": {"type": "integer"}, "field": {"type": "string"},
                    "problem": {"type": "string"}}}},
                "truncated": {"type": "boolean"},
                "request_id": {"type": "string"}}},
        }},
    }
    if auth == "api_key":
        doc["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
        doc["security"] = [{"apiKey": []}]
    elif auth == "iam":
        doc["components"]["securitySchemes"] = {"sigv4": {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "AWS Signature Version 4 (service execute-api)"}}
        doc["security"] = [{"sigv4": []}]
    return doc
