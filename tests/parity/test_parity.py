"""What the local gateway answers over HTTP equals what the shipped function answers when its
zip and layers run stand-alone under awslambdaric on a documented payload 2.0 event.

Equal except ids: request ids, timestamps, ``apigw-requestid``, ``x-mlops-request-id`` and
``x-mlops-cold-start`` may differ; status, headers and body must not.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import Deployment, Reply, Shipped
from .events import http_api_event, input_transformer, scheduled_event

pytestmark = pytest.mark.timeout(240)

ID_HEADERS = {"apigw-requestid", "x-mlops-request-id", "x-mlops-cold-start"}
# What the HTTP server adds around the handler's response (API Gateway adds its own).
TRANSPORT_HEADERS = {"date", "server", "content-length", "connection", "keep-alive",
                     "transfer-encoding"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    route_key: str
    body: Any = None  # JSON value, bytes as they are, None: no body
    content_type: str | None = "application/json"
    base64_event: bool = False  # the direct event carries the body base64-encoded

    def raw(self, sample: dict[str, Any]) -> bytes:
        body = self.body(sample) if callable(self.body) else self.body
        if body is None:
            return b""
        return body if isinstance(body, bytes) else json.dumps(body).encode()


PREDICT = "POST /diagnosis/predict"


def _row(sample: dict[str, Any]) -> dict[str, Any]:
    return dict(sample["instances"][0])


CASES = [
    Case("json", "POST", "/diagnosis/predict", PREDICT, lambda s: s),
    Case("base64", "POST", "/diagnosis/predict", PREDICT, lambda s: s, base64_event=True),
    Case("binary-content-type", "POST", "/diagnosis/predict", PREDICT, lambda s: s,
         content_type="application/octet-stream", base64_event=True),
    Case("malformed-json", "POST", "/diagnosis/predict", PREDICT, b'{"instances": [{"mean_'),
    Case("wrong-type", "POST", "/diagnosis/predict", PREDICT,
         lambda s: {"instances": [{**_row(s), "mean_radius": "large"}]}),
    Case("negative", "POST", "/diagnosis/predict", PREDICT,
         lambda s: {"instances": [{**_row(s), "mean_area": -1.0}]}),
    Case("text-plain", "POST", "/diagnosis/predict", PREDICT, lambda s: s,
         content_type="text/plain"),
    Case("empty-body", "POST", "/diagnosis/predict", PREDICT, None),
    Case("oip-infer", "POST", "/v2/models/predict/infer", "POST /v2/models/predict/infer",
         lambda s: {"id": "client-1", "inputs": [{
             "name": "input", "shape": [1, 30], "datatype": "FP64",
             "data": list(_row(s).values())}]}),
    Case("oip-infer-bad", "POST", "/v2/models/predict/infer", "POST /v2/models/predict/infer",
         {"inputs": "no"}),
    Case("oip-metadata", "GET", "/v2/models/predict", "GET /v2/models/predict",
         content_type=None),
    Case("oip-ready", "GET", "/v2/models/predict/ready", "GET /v2/models/predict/ready",
         content_type=None),
    Case("oip-live", "GET", "/v2/health/live", "GET /v2/health/live", content_type=None),
    Case("openapi", "GET", "/diagnosis/predict/openapi.json",
         "GET /diagnosis/predict/openapi.json", content_type=None),
    Case("feedback", "POST", "/diagnosis/predict/feedback",
         "POST /diagnosis/predict/feedback", [{"request_id": "earlier-1", "label": "malignant"},
                                               {"request_id": "earlier-2", "row": 1,
                                                "label": "benign"}]),
    Case("feedback-bad-label", "POST", "/diagnosis/predict/feedback",
         "POST /diagnosis/predict/feedback", {"request_id": "earlier-3", "label": "maybe"}),
]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def _ids_out(value: Any, ids: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: "<id>" if k == "request_id" and v else _ids_out(v, ids)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_ids_out(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return "<id>"
    return value


def _answer(status: int, headers: dict[str, str], body: bytes, ids: set[str]) -> Answer:
    for name in ("x-mlops-request-id", "apigw-requestid"):
        if headers.get(name):
            ids.add(headers[name])
    assert headers.get("x-mlops-cold-start") in ("true", "false"), headers
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = body.decode(errors="replace")
    kept = {k: v for k, v in headers.items() if k not in ID_HEADERS | TRANSPORT_HEADERS}
    return Answer(status, kept, _ids_out(parsed, ids))


def from_http(reply: Reply) -> Answer:
    headers = dict(reply.headers)
    assert len(headers) == len(reply.headers), f"repeated headers: {reply.headers}"
    assert int(headers["content-length"]) == len(reply.body)
    assert headers.get("apigw-requestid"), "the gateway names each request"
    return _answer(reply.status, headers, reply.body, set())


def from_payload(payload: dict[str, Any], request_id: str) -> Answer:
    """The handler's payload 2.0 response, read the way API Gateway reads it."""
    assert set(payload) <= {"statusCode", "headers", "body", "isBase64Encoded", "cookies",
                            "multiValueHeaders"}, payload
    body = payload.get("body") or ""
    raw = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
    headers = {str(k).lower(): str(v) for k, v in (payload.get("headers") or {}).items()}
    return _answer(int(payload["statusCode"]), headers, raw, {request_id})


@pytest.fixture(scope="module")
def sample(deployment: Deployment) -> dict[str, Any]:
    return dict(json.loads(deployment.project.sample()))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gateway_and_shipped_zip_answer_alike(case: Case, deployment: Deployment,
                                              shipped: Shipped,
                                              sample: dict[str, Any]) -> None:
    body = case.raw(sample)
    headers = {"host": deployment.host, "user-agent": "parity/1", "accept": "*/*"}
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    if body or case.method == "POST":
        headers["content-length"] = str(len(body))

    over_http = from_http(deployment.request(case.method, case.path, headers, body))

    arn = deployment.routes[case.route_key]
    # The local gateway is the API's custom domain, mapped under the API id: as on AWS, that
    # base path is part of rawPath (and of the OpenAPI document's server URL).
    event = http_api_event(route_key=case.route_key, api_id=deployment.api_id,
                           method=case.method, path=f"/{deployment.api_id}{case.path}",
                           headers=headers, body=body, base64_body=case.base64_event)
    payload, result = shipped.invoke(arn, event)
    direct = from_payload(payload, event["requestContext"]["requestId"])

    assert over_http == direct
    assert payload["headers"]["x-mlops-request-id"] == event["requestContext"]["requestId"]
    assert result.request_id and not result.timed_out


def test_a_few_statuses_are_what_the_contract_says(deployment: Deployment,
                                                   shipped: Shipped,
                                                   sample: dict[str, Any]) -> None:
    """A guard that the cases above exercise what their names say (not 404 everywhere)."""
    want = {"json": 200, "base64": 200, "binary-content-type": 415, "malformed-json": 400,
            "wrong-type": 422, "negative": 422, "text-plain": 415, "empty-body": 400,
            "oip-infer": 200, "oip-infer-bad": 400, "oip-metadata": 200, "oip-ready": 200,
            "oip-live": 200, "openapi": 200, "feedback": 202, "feedback-bad-label": 422}
    got = {}
    for case in CASES:
        event = http_api_event(route_key=case.route_key, api_id=deployment.api_id,
                               method=case.method, path=case.path,
                               headers={"host": deployment.host, **(
                                   {"content-type": case.content_type}
                                   if case.content_type else {})},
                               body=case.raw(sample), base64_body=case.base64_event)
        payload, _ = shipped.invoke(deployment.routes[case.route_key], event)
        got[case.name] = payload["statusCode"]
    assert got == want


def test_scheduled_monitor_run_has_the_same_result(deployment: Deployment,
                                                   shipped: Shipped) -> None:
    """The schedule rule's event, through the rule's input transformer, to the monitor:
    the daemon's Lambda Invoke and the stand-alone shipped zip return the same summary."""
    conn = deployment.conn
    events, lam = conn.client("events"), conn.client("lambda")
    found = []
    for rule in events.list_rules()["Rules"]:
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            if ":function:" in target["Arn"] and "InputTransformer" in target:
                found.append((rule, target))
    assert len(found) == 1, found
    rule, target = found[0]
    fired = datetime.now(UTC).replace(second=0, microsecond=0)
    event = input_transformer(target["InputTransformer"],
                              scheduled_event(rule["Arn"], "us-east-1", fired))
    assert event == {"source": "mlops.schedule", "monitor": "diagnosis-drift",
                     "time": fired.strftime("%Y-%m-%dT%H:%M:%SZ")}

    resp = lam.invoke(FunctionName=target["Arn"], Payload=json.dumps(event).encode())
    via_daemon = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, via_daemon
    direct, _ = shipped.invoke(target["Arn"], event)

    assert set(via_daemon) == set(direct) == {"status", "subject", "report", "notification",
                                              "actions"}
    assert via_daemon["actions"] == direct["actions"]
    assert {k: type(v) for k, v in via_daemon.items()} == {k: type(v) for k, v in direct.items()}
    assert via_daemon["status"] == direct["status"]
    assert via_daemon["subject"] == direct["subject"]
    # reports/<monitor>/<when it ran>-<run id>/report.json: equal but for the run
    run = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]+")
    assert run.search(via_daemon["report"]) and run.search(direct["report"])
    assert run.sub("<run>", via_daemon["report"]) == run.sub("<run>", direct["report"])
    assert _runs_out(via_daemon["notification"], run) == _runs_out(direct["notification"], run)


def _runs_out(value: Any, run: re.Pattern[str]) -> Any:
    """A notification summary without what names its run (keys, SES message ids)."""
    if isinstance(value, dict):
        return {k: "<id>" if k.lower() in ("message_id", "messageid") else _runs_out(v, run)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_runs_out(v, run) for v in value]
    return run.sub("<run>", value) if isinstance(value, str) else value
