"""Labels at scale on the embedded local AWS: feedback posted in many requests leaves through
the function's log and the feedback stream in batches (fewer objects than requests); a
monitor run joins the labels to the captured predictions of two model versions and reports
accuracy per version; a label posted after the window was reported counts when that window
is run again; the retention rules are stored on the bucket."""

from __future__ import annotations

import gzip
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from framework import workflow
from tests.e2e.conftest import Project, http

pytestmark = pytest.mark.timeout(600)
MONITOR = "diagnosis-drift"


def _predict(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    status, _, body = http("POST", url, json.dumps({"instances": rows}).encode())
    assert status == 200, body
    return dict(body)


def _gateway(project: Project) -> str:
    home = project.root / ".mlops" / "local"
    return str(json.loads((home / "daemon.json").read_text())["gateway_url"])


def _flush(gateway: str) -> None:
    status, _, _ = http("POST", f"{gateway}/_mlops/flush", b"")
    assert status == 200


def _report(project: Project, window: str) -> dict[str, Any]:
    project.mlops("monitor", "run", MONITOR, "--window", window)
    out = project.mlops("monitor", "report", MONITOR, "-o", "json").stdout
    return dict(json.loads(out))


def test_labels_batched_joined_per_version_late_label_counted(project: Project) -> None:
    project.edit("notify: {email: [oncology-ops@example.com], when: drift}",
                 "notify: {email: [oncology-ops@example.com], when: drift}\n"
                 "    performance: {metric: accuracy, min_labels: 1}")
    project.edit("capture: {sample_rate: 1.0}", "capture: {sample_rate: 1.0, retain_days: 30}")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    deployed = project.mlops("deploy").stdout
    found = re.search(r"endpoint predict .*: (http://\S+)", deployed)
    assert found, deployed
    url = found.group(1)
    rows = json.loads(project.sample())["instances"]
    first = [_predict(url, rows) for _ in range(4)]  # model 1.0.0
    project.use_model(7)
    project.edit("version: 1.0.0", "version: 1.1.0")
    project.mlops("deploy")
    second = [_predict(url, rows) for _ in range(4)]  # model 1.1.0
    assert {a["version"] for a in first} == {"1.0.0"}
    assert {a["version"] for a in second} == {"1.1.0"}

    # Labels: the first three answers of each version confirmed, one per request; the rest
    # held back (one of them posted late, wrong).
    posted = 0
    for answer in first[:3] + second[:3]:
        items = [{"request_id": answer["request_id"], "row": i, "label": p}
                 for i, p in enumerate(answer["predictions"])]
        status, _, body = http("POST", f"{url}/feedback", json.dumps(items).encode())
        assert status == 202 and body["accepted"] == len(items)
        posted += 1
    gateway = _gateway(project)
    _flush(gateway)
    session = workflow.open_session(workflow.Workspace.open(project.yaml))
    s3, bucket = session.target.conn.client("s3"), session.bucket
    keys = [o["Key"] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix="feedback/predict/dt=").get("Contents", [])]
    assert 1 <= len(keys) < posted  # the stream's buffers, not one object per request
    lines = [json.loads(line) for k in keys for line in gzip.decompress(
        s3.get_object(Bucket=bucket, Key=k)["Body"].read()).decode().splitlines()]
    per_answer = len(rows)
    assert len(lines) == 6 * per_answer and {r["msg"] for r in lines} == {"feedback"}

    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    window = f"{start.isoformat()}..{end.isoformat()}"
    perf = _report(project, window)["performance"]
    assert perf["labelled"] == 6 * per_answer
    assert set(perf["by_version"]) == {"1.0.0", "1.1.0"}
    assert perf["by_version"]["1.0.0"] == {**perf["by_version"]["1.0.0"], "accuracy": 1.0,
                                           "labelled": 3 * per_answer}
    assert perf["by_version"]["1.1.0"]["accuracy"] == 1.0

    # After the window was reported: a wrong label for a 1.1.0 answer. The next run of that
    # window counts it there.
    late = second[3]
    wrong = "benign" if late["predictions"][0] == "malignant" else "malignant"
    status, _, _ = http("POST", f"{url}/feedback", json.dumps(
        {"request_id": late["request_id"], "row": 0, "label": wrong}).encode())
    assert status == 202
    time.sleep(0.5)
    _flush(gateway)
    again = _report(project, window)["performance"]
    assert again["labelled"] == 6 * per_answer + 1
    v2 = again["by_version"]["1.1.0"]
    assert v2["labelled"] == 3 * per_answer + 1
    assert v2["accuracy"] == pytest.approx(3 * per_answer / (3 * per_answer + 1))
    assert again["by_version"]["1.0.0"]["accuracy"] == 1.0

    # retention: everything derived from captures expires with them, on the bucket itself
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert {(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules
            if r["ID"].startswith("mlops-")} == {
        (f"{root}/predict/", 30) for root in ("capture", "capture-errors", "capture-profiles",
                                              "feedback", "feedback-errors")}
