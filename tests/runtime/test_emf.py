"""The handler's metrics line (Embedded Metric Format): its shape against the EMF
specification's JSON schema and rules, its values per answer, and the switch that turns it off.

Requests run through the real ``Service`` (model loaded from an in-process moto registry,
onnxruntime session), and the line is read back from what the handler wrote to stdout.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from moto import mock_aws
from tinymodels import regressor, tensor_classifier

from framework.runtime import emf
from framework.runtime.clients import Connection
from framework.runtime.errors import ModelUnavailableError
from framework.runtime.service import Service, Settings

# The EMF specification's JSON schema (CloudWatch_Embedded_Metric_Format_Specification), with
# its current limits: at most 30 keys a dimension set, 100 metric definitions a directive,
# StorageResolution 1 or 60.
UNIT = ("^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|"
        "Bits|Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes\\/Second|"
        "Kilobytes\\/Second|Megabytes\\/Second|Gigabytes\\/Second|Terabytes\\/Second|"
        "Bits\\/Second|Kilobits\\/Second|Megabits\\/Second|Gigabits\\/Second|"
        "Terabits\\/Second|Count\\/Second|None)$")
NAME = {"type": "string", "pattern": "^(.*)$", "minLength": 1, "maxLength": 255}
EMF_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Root Node", "required": ["_aws"],
    "properties": {"_aws": {
        "type": "object", "title": "Metadata", "required": ["Timestamp", "CloudWatchMetrics"],
        "properties": {
            "Timestamp": {"type": "integer"},
            "CloudWatchMetrics": {"type": "array", "title": "MetricDirectives", "items": {
                "type": "object", "title": "MetricDirective",
                "required": ["Namespace", "Dimensions", "Metrics"],
                "properties": {
                    "Namespace": NAME,
                    "Dimensions": {"type": "array", "minItems": 1, "items": {
                        "type": "array", "title": "DimensionSet", "minItems": 0,
                        "maxItems": 30, "items": NAME}},
                    "Metrics": {"type": "array", "maxItems": 100, "items": {
                        "type": "object", "title": "MetricDefinition", "required": ["Name"],
                        "properties": {"Name": NAME,
                                       "Unit": {"type": "string", "pattern": UNIT},
                                       "StorageResolution": {"enum": [1, 60]}}}}}}}}}}}


def check_emf(doc: dict[str, Any]) -> None:
    """The schema, and the rules of the specification a schema cannot say: every dimension
    key is a root member with a string value, every metric a root member with a number (or
    at most 100 numbers)."""
    jsonschema.validate(doc, EMF_SCHEMA)
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for dims in directive["Dimensions"]:
            for key in dims:
                assert isinstance(doc.get(key), str) and doc[key], key
        for metric in directive["Metrics"]:
            value = doc.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100, metric
            assert all(type(v) in (int, float) and math.isfinite(v) for v in values), metric


def test_the_schema_refuses_what_the_specification_refuses() -> None:
    good = {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [
        {"Namespace": "n", "Dimensions": [["A"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}]},
        "A": "a", "M": 1}
    check_emf(good)
    for broken in (
        {"_aws": {**good["_aws"], "Timestamp": "now"}},
        {"_aws": {"CloudWatchMetrics": good["_aws"]["CloudWatchMetrics"]}},
        {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [
            {"Namespace": "n", "Dimensions": [["A"]], "Metrics": [{"Name": "M",
                                                                  "Unit": "Requests"}]}]}},
        {"_aws": {"Timestamp": 1, "CloudWatchMetrics": [
            {"Namespace": "n", "Dimensions": [], "Metrics": [{"Name": "M"}]}]}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, EMF_SCHEMA)
    with pytest.raises(AssertionError):
        check_emf({**good, "A": 3})  # a dimension value must be a string
    with pytest.raises(AssertionError):
        check_emf({**good, "M": "1"})  # a metric value must be a number


# -- through the Service ----------------------------------------------------------------------
BUCKET = "emf-registry"
ROUTE = "POST /tiny/predict"
ROW = {"a": 1.0, "b": 0.5, "c": -0.2}
CONTEXT = SimpleNamespace(aws_request_id="ctx-1", function_name="tiny",
                          get_remaining_time_in_millis=lambda: 15000)


def event(route_key: str, path: str, body: Any = None,
          content_type: str = "application/json") -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": content_type, "host": "h"},
        "requestContext": {"http": {"method": route_key.split(" ")[0], "path": path},
                           "requestId": "req-1", "routeKey": route_key, "stage": "$default"},
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False}


Call = Callable[[dict[str, Any]], tuple[dict[str, Any], list[dict[str, Any]]]]


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Call]]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)

        def make(built: tuple[bytes, dict[str, Any]], **env: str) -> Call:
            raw, meta = built
            prefix = f"models/{meta['name']}/1.0.0/"
            s3.put_object(Bucket=BUCKET, Key=prefix + "model.onnx", Body=raw)
            s3.put_object(Bucket=BUCKET, Key=prefix + "metadata.json", Body=json.dumps(meta))
            settings = Settings.from_env({
                "MLOPS_REGISTRY_BUCKET": BUCKET, "MLOPS_MODEL_NAME": str(meta["name"]),
                "MLOPS_MODEL_VERSION": "1.0.0", "MLOPS_MODEL_SHA256": str(meta["sha256"]),
                "MLOPS_ENDPOINT": "predict", "MLOPS_ROUTE": ROUTE,
                "AWS_LAMBDA_FUNCTION_NAME": "shop-prod-predict", **env})
            svc = Service(settings, Connection("us-east-1"))

            def call(ev: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
                capsys.readouterr()
                response = svc.handle(ev, CONTEXT)
                lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
                return response, lines

            return call

        yield make


def metrics_of(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The one EMF line among the lines of a request (checked), and that the request line is
    last, as before."""
    found = [line for line in lines if "_aws" in line]
    assert len(found) == 1, lines
    assert lines[-1]["msg"] == "request"
    check_emf(found[0])
    return found[0]


def test_a_prediction_line(service: Callable[..., Call]) -> None:
    call = service(tensor_classifier())
    before = int(time.time() * 1000)
    response, lines = call(event(ROUTE, "/tiny/predict", {"instances": [ROW, ROW, {**ROW,
                                                                                   "a": 9.0}]}))
    after = int(time.time() * 1000)
    assert response["statusCode"] == 200
    doc = metrics_of(lines)
    meta = doc["_aws"]
    assert before <= meta["Timestamp"] <= after
    [directive] = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == "mlops"
    # the function's name: unique in the account and region, unlike the endpoint's
    assert directive["Dimensions"] == [["FunctionName", "ModelVersion"], ["FunctionName"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "Requests": "Count", "ClientErrors": "Count", "ServerErrors": "Count",
        "InvalidInput": "Count", "Latency": "Milliseconds", "Rows": "Count",
        "PredictionMean": "None", "Confidence": "None"}
    assert doc["FunctionName"] == "shop-prod-predict" and doc["ModelVersion"] == "1.0.0"
    assert doc["Endpoint"] == "predict"  # a plain member, for queries
    assert (doc["Requests"], doc["ClientErrors"], doc["ServerErrors"], doc["InvalidInput"],
            doc["Rows"]) == (1, 0, 0, 0, 3)
    assert 0 < doc["Latency"] <= lines[-1]["latency_ms"] + 0.001
    answer = json.loads(response["body"])
    probabilities = answer["probabilities"]
    assert doc["PredictionMean"] == pytest.approx(sum(p[1] for p in probabilities) / 3,
                                                  abs=1e-6)
    assert doc["Confidence"] == pytest.approx(sum(max(p) for p in probabilities) / 3,
                                              abs=1e-6)


def test_a_regressor_and_a_zipmap_classifier(service: Callable[..., Call]) -> None:
    reg = service(regressor())
    response, lines = reg(event(ROUTE, "/tiny/predict", {"instances": [ROW, {**ROW, "a": 4}]}))
    doc = metrics_of(lines)
    predictions = json.loads(response["body"])["predictions"]
    assert doc["PredictionMean"] == pytest.approx(sum(predictions) / 2, abs=1e-6)
    assert "Confidence" not in doc and doc["Rows"] == 2
    assert "Confidence" not in {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]
                                ["Metrics"]}

    zipmap = service(tensor_classifier(zipmap=True, string_labels=True))
    response, lines = zipmap(event(ROUTE, "/tiny/predict", {"instances": [ROW]}))
    doc = metrics_of(lines)
    answer = json.loads(response["body"])
    positive = answer["classes"].index("yes")
    assert positive == 1
    assert doc["PredictionMean"] == pytest.approx(answer["probabilities"][0][1], abs=1e-6)


@pytest.mark.parametrize(("route", "path", "body", "content_type", "counts"), [
    # status, ClientErrors, ServerErrors, InvalidInput
    (ROUTE, "/tiny/predict", {"instances": [{**ROW, "a": -1}]}, "application/json",
     (422, 1, 0, 1)),
    (ROUTE, "/tiny/predict", "{", "application/json", (400, 1, 0, 1)),
    (ROUTE, "/tiny/predict", "a=1", "text/plain", (415, 1, 0, 1)),
    ("POST /v2/models/predict/nowhere", "/v2/models/predict/nowhere", {},
     "application/json", (404, 1, 0, 0)),
    ("GET /tiny/predict/feedback", "/tiny/predict/feedback", None, "application/json",
     (405, 1, 0, 0)),
    ("GET /tiny/predict/openapi.json", "/tiny/predict/openapi.json", None, "application/json",
     (200, 0, 0, 0)),
])
def test_answers_that_are_not_predictions(service: Callable[..., Call], route: str, path: str,
                                          body: Any, content_type: str,
                                          counts: tuple[int, int, int, int]) -> None:
    call = service(tensor_classifier())
    response, lines = call(event(route, path, body, content_type))
    doc = metrics_of(lines)
    assert (response["statusCode"], doc["ClientErrors"], doc["ServerErrors"],
            doc["InvalidInput"]) == counts
    assert doc["Requests"] == 1
    assert not {"Rows", "PredictionMean", "Confidence"} & doc.keys()


def test_a_model_that_cannot_load_is_a_server_error(service: Callable[..., Call]) -> None:
    raw, meta = tensor_classifier()
    call = service((raw, {**meta, "sha256": "0" * 64}))  # the registry's bytes do not match
    response, lines = call(event(ROUTE, "/tiny/predict", {"instances": [ROW]}))
    doc = metrics_of(lines)
    assert response["statusCode"] == 503 and doc["ServerErrors"] == 1
    assert doc["ClientErrors"] == 0 and lines[-1]["level"] == "ERROR"


def test_the_switch(service: Callable[..., Call]) -> None:
    call = service(tensor_classifier(), MLOPS_METRICS_SINK="off")
    response, lines = call(event(ROUTE, "/tiny/predict", {"instances": [ROW]}))
    assert response["statusCode"] == 200
    assert [line["msg"] for line in lines] == ["request"]
    with pytest.raises(ModelUnavailableError, match="MLOPS_METRICS_SINK"):
        Settings.from_env({"MLOPS_REGISTRY_BUCKET": "b", "MLOPS_MODEL_NAME": "m",
                           "MLOPS_MODEL_VERSION": "1", "MLOPS_METRICS_SINK": "statsd"})


# -- the summary alone --------------------------------------------------------------------------
@pytest.mark.parametrize(("task", "labels", "probabilities", "classes", "expected"), [
    ("regression", [1.0, 2.0, 6.0], None, None, (3, 3.0, None)),
    ("classification", [0, 1], [[0.8, 0.2], [0.4, 0.6]], [0, 1], (2, 0.4, 0.7)),
    ("classification", ["a", "c"], [[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]], ["a", "b", "c"],
     (2, None, 0.65)),
    ("classification", ["no", "yes", "yes", "no"], None, ["no", "yes"], (4, 0.5, None)),
    ("classification", [0, 2], None, [0, 1, 2], (2, None, None)),
    ("regression", [[1.0, 2.0]], None, None, (1, None, None)),  # a 2-D output: no mean
    ("regression", [], None, None, None),
])
def test_summary(task: str, labels: list[Any], probabilities: list[list[float]] | None,
                 classes: list[Any] | None, expected: emf.Summary | None) -> None:
    got = emf.summary(task, labels, probabilities, classes)
    if expected is None:
        assert got is None
        return
    assert got is not None and got[0] == expected[0]
    for value, want in zip(got[1:], expected[1:], strict=True):
        assert (value is None) == (want is None) and (want is None or value == pytest.approx(want))


def test_lines_of_odd_names_and_values_stay_valid() -> None:
    line = emf.MetricLine("p-dev-ep", 'ep "quoted" \u00e9', "1.0.0-rc.1+build")
    doc = json.loads(line.line(1.5, 200, "0.125", (1, 1e-300, 0.5)))
    check_emf(doc)
    assert doc["Endpoint"] == 'ep "quoted" \u00e9' and doc["_aws"]["Timestamp"] == 1500
    assert doc["FunctionName"] == "p-dev-ep"
    assert line.line(1.5, 200, "nan", None) == ""  # no finite latency, no line
