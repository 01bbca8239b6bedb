"""The served OpenAPI document is a valid OpenAPI 3.1 document, declares the bounds the model
accepts, documents every status of every route (auth included), and its request schemas agree
with what validation accepts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from framework.runtime import openapi
from framework.runtime.errors import RequestError
from framework.runtime.features import FeatureSpec, parse_payload
from framework.runtime.inference import ModelBundle

F32_MAX = float(np.finfo(np.float32).max)


def _doc(bundle: ModelBundle, auth: str = "none") -> dict[str, Any]:
    return openapi.document(endpoint="ep", route="POST /x/score", model=bundle.name,
                            version=bundle.version, task=bundle.task, features=bundle.features,
                            classes=bundle.classes, max_rows=5, auth=auth)


@pytest.mark.parametrize("auth", ["none", "api_key", "iam"])
def test_the_document_is_valid_openapi(clf_bundle: ModelBundle, cols_bundle: ModelBundle,
                                       reg_bundle: ModelBundle, auth: str) -> None:
    for bundle in (clf_bundle, cols_bundle, reg_bundle):
        validate(_doc(bundle, auth))


def test_number_fields_carry_the_model_input_bounds(clf_bundle: ModelBundle) -> None:
    props = _doc(clf_bundle)["components"]["schemas"]["Instance"]["properties"]
    assert props["a"] == {"type": "number", "minimum": 0.0, "maximum": 10.0}  # declared
    assert props["b"] == {"type": ["number", "null"], "minimum": -F32_MAX, "maximum": F32_MAX}
    assert props["c"] == {"type": "number", "minimum": -F32_MAX, "maximum": F32_MAX}
    row = _doc(clf_bundle)["components"]["schemas"]["Row"]
    assert row["prefixItems"] == [props["a"], props["b"], props["c"]]


def test_integer_fields_carry_their_width() -> None:
    spec = FeatureSpec("n", "int", min=-5, dtype="int32")
    assert openapi.feature_schema(spec) == {"type": "integer", "minimum": -5,
                                            "maximum": 2**31 - 1}
    spec = FeatureSpec("color", "category", values=("r", "g"), nullable=True)
    assert openapi.feature_schema(spec) == {"type": ["string", "null"],
                                            "enum": ["r", "g", None]}


@pytest.mark.parametrize(("auth", "codes"), [
    ("none", set()), ("api_key", {"401", "403"}), ("iam", {"403"})])
def test_auth_statuses_are_documented_on_every_guarded_route(
        clf_bundle: ModelBundle, auth: str, codes: set[str]) -> None:
    doc = _doc(clf_bundle, auth)
    for path, item in doc["paths"].items():
        for op in item.values():
            documented = set(op["responses"])
            if path.startswith("/v2/health/"):
                assert op["security"] == [] and not documented & {"401", "403"}
            else:
                assert codes <= documented, (path, documented)
                assert "503" in documented
    metadata = doc["paths"]["/v2/models/ep"]["get"]["responses"]
    assert set(metadata) == {"200", "503"} | codes


def _validator(doc: dict[str, Any], pointer: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents(doc, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"urn:doc#{pointer}"}, registry=registry)


PREDICT_BODY = "/paths/~1x~1score/post/requestBody/content/application~1json/schema"
ROW = {"a": 1.0, "b": 0.5, "c": -0.2}


@pytest.mark.parametrize("body", [
    {"instances": [ROW]}, {"instances": ROW}, {"inputs": [[1.0, None, 2]]}, {"inputs": [1, 2, 3]},
    {"instances": [ROW | {"c": F32_MAX}]}, {"instances": [ROW | {"c": -3.4e38}]},
    {"instances": [ROW | {"c": 3.5e38}]}, {"instances": [ROW | {"c": 1e39}]},
    {"instances": [ROW | {"a": 10.5}]}, {"instances": [ROW | {"a": -1}]},
    {"instances": [{"a": 1.0, "c": 0.0}]}, {"instances": [{"a": 1.0, "b": 1.0}]},
    {"instances": [ROW | {"z": 1}]}, {"instances": [ROW | {"c": "1"}]},
    {"instances": [ROW | {"c": True}]}, {"instances": [ROW] * 6}, {"instances": []},
    {"inputs": [[1.0, 2.0]]}, {"inputs": [[1.0, 2.0, 1e39]]}, {"inputs": [[1, 2, 3]], "x": 1},
    {"instances": [ROW], "inputs": [[1, 2, 3]]}, {}, [ROW],
])
def test_request_schema_agrees_with_validation(clf_bundle: ModelBundle, body: Any) -> None:
    valid = _validator(_doc(clf_bundle), PREDICT_BODY).is_valid(body)
    try:
        parse_payload(body, clf_bundle.features, 5)
        accepted = True
    except RequestError:
        accepted = False
    assert valid == accepted, body
