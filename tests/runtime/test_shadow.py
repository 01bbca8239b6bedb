"""Shadow traffic in the handler: what a primary hands to its mirror, and what a shadow writes
for a copy (capture lines marked shadow with the primary's request id, one ``shadow`` log
line, the Shadow* EMF metrics), through the real ``Service`` (model in an in-process moto
registry, onnxruntime session). Sending copies to Lambda is tested against the local AWS
(``tests/local/test_async_invoke.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws
from test_emf import check_emf
from tinymodels import regressor, tensor_classifier

from framework.runtime import shadow
from framework.runtime.clients import Connection
from framework.runtime.service import Service, Settings

BUCKET = "shadow-registry"
ROUTE = "POST /tiny/predict"
ROW = {"a": 1.0, "b": 0.5, "c": -0.2}
TARGET = "arn:aws:lambda:us-east-1:123456789012:function:proj-dev-predict:shadow"
CONTEXT = SimpleNamespace(aws_request_id="lambda-req", function_name="tiny",
                          get_remaining_time_in_millis=lambda: 15000)


def event(body: Any, request_id: str = "req-1", path: str = "/tiny/predict",
          route: str = ROUTE) -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "h"},
        "requestContext": {"http": {"method": route.split(" ")[0], "path": path},
                           "requestId": request_id, "routeKey": route, "stage": "$default"},
        "body": json.dumps(body), "isBase64Encoded": False}


# -- pure parts ------------------------------------------------------------------------------


def test_disagreements_count_rows() -> None:
    assert shadow.disagreements(["a", "b", "c"], ["a", "x", "c"]) == (3, 1)
    assert shadow.disagreements([0, 1], [0, 1]) == (2, 0)
    assert shadow.disagreements([0, 1], [0]) == (0, 0)  # not comparable: nothing compared
    assert shadow.disagreements(None, [0]) == (0, 0)
    assert shadow.disagreements([1.0, 2.0], [1.0 + 1e-9, 2.5], regression=True) == (2, 1)
    assert shadow.disagreements([1.0], [1.0 + 1e-9]) == (1, 1)  # labels: exact


def test_a_copy_carries_the_primary_answer_and_nothing_else_changes() -> None:
    original = event({"instances": [ROW]})
    copy = shadow.copy_event(original, request_id="req-1", version="4", model_version="1.0.1",
                             predictions=[1])
    assert {k: v for k, v in copy.items() if k != shadow.KEY} == original
    assert shadow.KEY not in original
    mark = shadow.marker(json.loads(json.dumps(copy)))
    assert mark == shadow.Marker("req-1", "4", "1.0.1", [1])
    assert shadow.marker(original) is None
    assert shadow.marker({shadow.KEY: "forged"}) is None


def test_the_metric_line_is_valid_emf() -> None:
    doc = json.loads(shadow.metric_line(1700000000.5, "fraud-dev-predict", "predict", "1.1.0",
                                        error=False, compared=3, disagreed=1))
    check_emf(doc)
    assert doc["_aws"]["Timestamp"] == 1700000000500
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "mlops"
    assert directive["Dimensions"] == [["FunctionName", "ModelVersion"]]
    assert (doc["FunctionName"], doc["Endpoint"]) == ("fraud-dev-predict", "predict")
    assert (doc["ShadowRequests"], doc["ShadowErrors"], doc["ShadowCompared"],
            doc["ShadowDisagreement"]) == (1, 0, 3, 1)


def test_capture_lines_are_marked_without_touching_values() -> None:
    lines = ('{"msg":"capture","request_id":"r","row":0,"inputs":{"x":"{\\"msg\\":'
             '\\"capture\\","}}\n{"msg":"capture","request_id":"r","row":1}\n')
    marked = [json.loads(line) for line in shadow.mark_capture(lines, "4").splitlines()]
    assert [m["shadow"] for m in marked] == [True, True]
    assert [m["primary_version"] for m in marked] == ["4", "4"]
    assert marked[0]["inputs"] == {"x": '{"msg":"capture",'}


def test_split_target() -> None:
    assert shadow.split_target(TARGET) == (TARGET.rsplit(":", 1)[0], "shadow")
    assert shadow.split_target("fn") == ("fn", "")


def test_the_mirror_sends_nothing_to_its_own_version_and_drops_when_full() -> None:
    mirror = shadow.Mirror(TARGET.replace(":shadow", ":4"), 1.0, "4", lambda: None)
    assert mirror.shadow_version() is None  # the target is this very version
    other = shadow.Mirror(TARGET.replace(":shadow", ":5"), 1.0, "4", lambda: None)
    assert other.shadow_version() == "5"
    full = shadow.Mirror(TARGET, 1.0, "4", lambda: None, queue_size=1)
    full._thread = object()  # type: ignore[assignment]  # no sender: the queue stays full
    assert full.offer({}, "r1", "1.0.0", [1]) and not full.offer({}, "r2", "1.0.0", [1])
    assert (full.offered, full.dropped) == (1, 1)
    half = shadow.Mirror(TARGET, 0.3, "4", lambda: None)
    half._thread = object()  # type: ignore[assignment]
    taken = sum(half.offer({}, f"id-{i}", "1.0.0", [1]) for i in range(60))
    assert taken == half.offered and 0 < taken < 60  # sampled by request id, as capture is


# -- through the Service ----------------------------------------------------------------------


Make = Callable[..., Service]


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)

        def make(built: tuple[bytes, dict[str, Any]], version: str = "1.0.0",
                 lambda_version: str = "4", **env: str) -> Service:
            raw, meta = built
            prefix = f"models/{meta['name']}/{version}/"
            s3.put_object(Bucket=BUCKET, Key=prefix + "model.onnx", Body=raw)
            s3.put_object(Bucket=BUCKET, Key=prefix + "metadata.json",
                          Body=json.dumps({**meta, "version": version}))
            settings = Settings.from_env({
                "MLOPS_REGISTRY_BUCKET": BUCKET, "MLOPS_MODEL_NAME": str(meta["name"]),
                "MLOPS_MODEL_VERSION": version, "MLOPS_MODEL_SHA256": str(meta["sha256"]),
                "MLOPS_ENDPOINT": "predict", "MLOPS_ROUTE": ROUTE,
                "AWS_LAMBDA_FUNCTION_VERSION": lambda_version, **env})
            return Service(settings, Connection("us-east-1"))

        yield make


def lines_of(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_primary_offers_a_sample_of_its_answered_predictions(
        services: Make, capsys: pytest.CaptureFixture[str]) -> None:
    svc = services(tensor_classifier(), MLOPS_SHADOW_TARGET=TARGET,
                   MLOPS_SHADOW_SAMPLE_RATE="1")
    mirror = svc.mirror
    assert mirror is not None and mirror.rate == 1.0 and mirror.own_version == "4"
    mirror._thread = object()  # type: ignore[assignment]  # keep the copies queued here
    answered = svc.handle(event({"instances": [ROW, {**ROW, "a": 9.0}]}), CONTEXT)
    assert answered["statusCode"] == 200
    refused = svc.handle(event({"instances": [{**ROW, "a": -1.0}]}, "req-2"), CONTEXT)
    assert refused["statusCode"] == 422
    svc.handle(event(None, "req-3", "/tiny/predict/openapi.json",
                     "GET /tiny/predict/openapi.json"), CONTEXT)
    assert mirror.offered == 1  # answered predictions only
    sent_event, request_id, model_version, predictions = mirror._queue.get_nowait()
    assert request_id == "req-1" and model_version == "1.0.0"
    assert predictions == json.loads(answered["body"])["predictions"]
    assert shadow.KEY not in sent_event  # marked by the sending thread, off the request path
    lines = lines_of(capsys)
    assert [line["msg"] for line in lines if "msg" in line] == ["request"] * 3


def test_no_mirror_without_a_target_or_a_rate(services: Make) -> None:
    assert services(tensor_classifier()).mirror is None
    assert services(tensor_classifier(), MLOPS_SHADOW_TARGET=TARGET).mirror is None
    assert services(tensor_classifier(), MLOPS_SHADOW_SAMPLE_RATE="1").mirror is None


def test_a_shadow_compares_its_answer_and_writes_only_shadow_lines(
        services: Make, capsys: pytest.CaptureFixture[str]) -> None:
    svc = services(tensor_classifier(), version="1.1.0", lambda_version="5",
                   MLOPS_CAPTURE_SINK="log", MLOPS_CAPTURE_SAMPLE_RATE="1",
                   MLOPS_SHADOW_TARGET=TARGET, MLOPS_SHADOW_SAMPLE_RATE="1")
    assert svc.mirror is not None
    svc.mirror._thread = object()  # type: ignore[assignment]  # keep the copies queued here
    rows = [ROW, {**ROW, "a": 9.0}, {**ROW, "a": 0.0}]
    own = json.loads(svc.handle(event({"instances": rows}), CONTEXT)["body"])["predictions"]
    assert svc.mirror.offered == 1  # as a primary, it copies
    capsys.readouterr()
    flipped = [own[0], 1 - own[1], own[2]]  # the primary answered otherwise on row 1
    copy = shadow.copy_event(event({"instances": rows}, "req-9"), request_id="req-9",
                             version="4", model_version="1.0.0", predictions=flipped)
    response = svc.handle(copy, CONTEXT)
    assert response["statusCode"] == 200
    lines = lines_of(capsys)
    captures = [line for line in lines if line.get("msg") == "capture"]
    assert [c["row"] for c in captures] == [0, 1, 2]
    assert all(c["shadow"] is True and c["primary_version"] == "4"
               and c["request_id"] == "req-9" and c["version"] == "1.1.0"
               and c["lambda_version"] == "5" for c in captures)
    [line] = [line for line in lines if line.get("msg") == "shadow"]
    assert (line["request_id"], line["primary_version"], line["primary_model_version"],
            line["version"], line["lambda_version"]) == ("req-9", "4", "1.0.0", "1.1.0", "5")
    assert (line["status"], line["compared"], line["disagreed"]) == (200, 3, 1)
    [metrics] = [line for line in lines if "_aws" in line]
    check_emf(metrics)
    assert (metrics["ModelVersion"], metrics["ShadowCompared"],
            metrics["ShadowDisagreement"], metrics["ShadowErrors"]) == ("1.1.0", 3, 1, 0)
    assert not any(line.get("msg") == "request" for line in lines)  # never a request
    assert "Requests" not in metrics  # the endpoint's own counts stay the primary's
    assert svc.mirror.offered == 1  # a copy is never copied again


def test_a_shadow_that_cannot_answer_counts_an_error(
        services: Make, capsys: pytest.CaptureFixture[str]) -> None:
    svc = services(regressor(), version="2.0.0", lambda_version="7")
    copy = shadow.copy_event(event({"instances": [{**ROW, "a": -5.0}]}, "req-4"),
                             request_id="req-4", version="6", model_version="1.0.0",
                             predictions=[0.3])
    assert svc.handle(copy, CONTEXT)["statusCode"] == 422  # its contract refuses the row
    lines = lines_of(capsys)
    [metrics] = [line for line in lines if "_aws" in line]
    assert (metrics["ShadowErrors"], metrics["ShadowCompared"]) == (1, 0)
    [line] = [line for line in lines if line.get("msg") == "shadow"]
    assert (line["status"], line["compared"]) == (422, 0)
    svc_off = services(regressor(), version="2.0.0", lambda_version="7",
                       MLOPS_METRICS_SINK="off")
    svc_off.handle(copy, CONTEXT)
    assert not any("_aws" in line for line in lines_of(capsys))
