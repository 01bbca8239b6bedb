"""An OpenAPI 3 document per endpoint, generated from the declared features.

Served at ``GET <route>/openapi.json``. It describes the native route (both body forms), the
feedback route and the Open Inference Protocol v2 routes, with the endpoint's auth scheme,
so client generators and fuzzers (schemathesis) work from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framework.runtime.features import FeatureSpec

ERROR_STATUSES = {
    "400": "Malformed request (shape, JSON)",
    "401": "Missing or unknown API key",
    "403": "Revoked key, or a key of another endpoint",
    "413": "Too many rows or too large a body",
    "415": "Content type is not JSON",
    "422": "Invalid values; details name the row and the field",
}


def feature_schema(f: FeatureSpec) -> dict[str, Any]:
    schema: dict[str, Any]
    if f.type == "category":
        schema = {"type": "string", "enum": list(f.values or ())}
    elif f.type == "bool":
        schema = {"type": "boolean"}
    else:
        schema = {"type": "integer" if f.type == "int" else "number"}
        if f.min is not None:
            schema["minimum"] = f.min
        if f.max is not None:
            schema["maximum"] = f.max
    if f.nullable:
        schema["nullable"] = True
    return schema


def _errors() -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {code: {"description": text, "content": {"application/json": {"schema": ref}}}
            for code, text in ERROR_STATUSES.items()}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


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
           "items": {"oneOf": [feature_schema(f) for f in features]},
           "description": "values in feature order: " + ", ".join(f.name for f in features)}
    label: dict[str, Any] = {"type": "number"} if task == "regression" else {}
    if classes:
        label = {"enum": list(classes)}
    predict_request = {"oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["instances"],
         "properties": {"instances": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                      "items": {"$ref": "#/components/schemas/Instance"}}}},
        {"type": "object", "additionalProperties": False, "required": ["inputs"],
         "properties": {"inputs": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                   "items": {"$ref": "#/components/schemas/Row"}}}},
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
                     "properties": {"request_id": {"type": "string", "minLength": 1},
                                    "row": {"type": "integer", "minimum": 0, "default": 0},
                                    "label": label or {"type": ["string", "number", "boolean"]}}}
    tensor = {"type": "object", "required": ["name", "shape", "datatype", "data"],
              "properties": {"name": {"type": "string"},
                             "shape": {"type": "array", "items": {"type": "integer"}},
                             "datatype": {"type": "string", "enum": [
                                 "BOOL", "BYTES", "FP16", "FP32", "FP64", "INT8", "INT16",
                                 "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]},
                             "data": {"type": "array"}}}
    v2 = f"/v2/models/{endpoint}"
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": f"{endpoint}: {model} {version}", "version": version,
                 "description": f"Predictions of model {model} ({task}); at most {max_rows} "
                                "rows per request."},
        "servers": [{"url": server_url}],
        "paths": {
            path: {method.lower(): {
                "operationId": "predict", "summary": "Predict",
                "requestBody": {"required": True, **_json(predict_request)},
                "responses": {"200": {"description": "Predictions", **_json(predict_response)},
                              **_errors()}}},
            f"{path}/feedback": {"post": {
                "operationId": "feedback", "summary": "Ground-truth labels by request id",
                "requestBody": {"required": True, **_json({"oneOf": [
                    feedback_item, {"type": "array", "minItems": 1, "items": feedback_item}]})},
                "responses": {"202": {"description": "Stored", **_json({
                    "type": "object", "properties": {"accepted": {"type": "integer"}}})},
                    **_errors()}}},
            f"{v2}/infer": {"post": {
                "operationId": "oipInfer", "summary": "Open Inference Protocol v2 infer",
                "requestBody": {"required": True, **_json({
                    "type": "object", "required": ["inputs"],
                    "properties": {"id": {"type": "string"}, "parameters": {"type": "object"},
                                   "inputs": {"type": "array", "minItems": 1, "items": tensor},
                                   "outputs": {"type": "array"}}})},
                "responses": {"200": {"description": "Output tensors", **_json({
                    "type": "object", "properties": {
                        "model_name": {"type": "string"}, "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {"type": "array", "items": tensor}}})}, **_errors()}}},
            v2: {"get": {"operationId": "oipMetadata", "summary": "Model metadata",
                         "responses": {"200": {"description": "Metadata"}}}},
            f"{v2}/ready": {"get": {"operationId": "oipReady", "summary": "Readiness",
                                    "responses": {"200": {"description": "Ready"},
                                                  "503": {"description": "Not ready"}}}},
        },
        "components": {"schemas": {
            "Instance": instance,
            "Row": row,
            "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "properties": {
                    "row": {"type": "integer"}, "field": {"type": "string"},
                    "problem": {"type": "string"}}}},
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
