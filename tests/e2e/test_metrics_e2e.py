"""The deployed handler's metrics on the embedded local AWS: each request answered by the
deployed zip and layer writes one EMF line, which reaches the function's log group and which
the local CloudWatch extracts (the values are checked here; ``tests/local/test_alarm_engine.py``
follows them into metrics and alarms, without waiting for a minute to end as this would)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from framework.local.metrics_engine import extract

from .conftest import Project, http
from .test_serving_e2e import _deploy

pytestmark = pytest.mark.timeout(300)


def test_the_deployed_handler_writes_metrics_the_local_cloudwatch_extracts(
        project: Project) -> None:
    d = _deploy(project)
    row = dict(json.loads(project.sample())["instances"][0])
    status, _, answer = http("POST", d.url, json.dumps({"instances": [row, row]}).encode())
    assert status == 200
    first = list(row)[0]
    status, _, _ = http("POST", d.url, json.dumps({"instances": [{**row, first: "x"}]})
                        .encode())
    assert status == 422

    group = "/aws/lambda/cancer-dx-dev-predict"
    found: list[dict[str, Any]] = []
    for _ in range(40):
        d.flush()
        events = d.logs.filter_log_events(logGroupName=group)["events"]
        found = [json.loads(e["message"]) for e in events if '"_aws"' in e["message"]]
        if len(found) >= 2:
            break
        time.sleep(0.5)
    assert len(found) == 2, found
    by_status = {}
    for doc in found:
        points = {(p.name, p.dimensions): p for p in extract(json.dumps(doc))}
        assert {p.namespace for p in points.values()} == {"mlops"}
        by_status["ok" if doc["ClientErrors"] == 0 else "invalid"] = points
        assert doc["Endpoint"] == "predict"  # on the line, for queries; no dimension
    ok = by_status["ok"]
    # per function (project, stage and endpoint: unique in the account and region)
    endpoint = (("FunctionName", "cancer-dx-dev-predict"),)
    version = (("FunctionName", "cancer-dx-dev-predict"), ("ModelVersion", "1.0.0"))
    assert ok[("Requests", endpoint)].values == (1.0,)
    assert ok[("Rows", version)].values == (2.0,)
    assert ok[("Latency", endpoint)].unit == "Milliseconds"
    classes, probabilities = answer["classes"], answer["probabilities"]
    assert len(classes) == 2
    assert ok[("PredictionMean", endpoint)].values[0] == pytest.approx(probabilities[0][1])
    assert ok[("Confidence", endpoint)].values[0] == pytest.approx(max(probabilities[0]))
    invalid = by_status["invalid"]
    assert invalid[("InvalidInput", version)].values == (1.0,)
    assert ("Rows", endpoint) not in invalid
