"""Profiled on landing, on the embedded local AWS: the deployed example's registry bucket sends
its object events to EventBridge, and the monitor's landing rule hands each capture object
Firehose delivers to the monitor function, which stores its partial profile — with no monitor
run, no report and no e-mail. A monitor run then reads no capture object: it merges the
partials. A capture object that cannot be profiled is counted (PartialProfileFailures) by the
failure notifier, not mailed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from framework.runtime.clients import Connection
from tests.e2e.conftest import Project, http
from tests.e2e.test_shadow_e2e import until  # the monitor function works asynchronously

pytestmark = pytest.mark.timeout(900)
MONITOR = "diagnosis-drift"


def subjects(home: Path) -> list[str]:
    return [str(BytesParser(policy=policy.default).parsebytes(m.read_bytes())["subject"])
            for m in sorted((home / "outbox").glob("*.eml"))]


def test_capture_objects_are_profiled_as_they_land_then_merged(project: Project) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    deployed = project.mlops("deploy").stdout
    found = re.search(r"endpoint predict .*: (http://\S+)", deployed)
    assert found, deployed
    home = project.root / ".mlops" / "local"
    daemon = json.loads((home / "daemon.json").read_text())
    conn = Connection("us-east-1", daemon["control_url"], dummy_credentials=True)
    s3, events, cw = conn.client("s3"), conn.client("events"), conn.client("cloudwatch")
    bucket = registry(s3)
    assert s3.get_bucket_notification_configuration(Bucket=bucket)[
        "EventBridgeConfiguration"] == {}
    (rule,) = [r for r in events.list_rules()["Rules"] if r["Name"].endswith(".landed")]
    assert json.loads(rule["EventPattern"])["detail"] == {
        "bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "capture/predict/"}]}}

    rows = json.loads(project.sample())["instances"]
    for _ in range(3):
        status, _, body = http("POST", found.group(1), json.dumps({"instances": rows}).encode())
        assert status == 200, body
    assert http("POST", f"{daemon['gateway_url']}/_mlops/flush", b"")[0] == 200
    captures = keys(s3, bucket, "capture/predict/")
    assert captures, "the flush delivered no capture object"

    def profiled() -> list[str] | None:
        partials = keys(s3, bucket, "capture-profiles/predict/")
        names = {p.rsplit("/", 1)[1].removesuffix(".profile.gz") for p in partials}
        return partials if all(c.rsplit("/", 1)[1] in names for c in captures) else None

    partials = until(profiled, "every capture object's partial profile", 300)
    assert len(partials) == len(captures)
    # ...by the monitor function on its own: no run wrote a report, nothing was mailed
    assert keys(s3, bucket, f"reports/{MONITOR}/") == []
    assert subjects(home) == []

    end = datetime.now(UTC) + timedelta(minutes=1)
    out = project.mlops("monitor", "run", MONITOR, "--window",
                        f"{start.isoformat(timespec='seconds')}.."
                        f"{end.isoformat(timespec='seconds')}", check=False).stdout
    key = re.search(r"report: s3://\S+?/(\S+) ", out)
    assert key, out
    report = json.loads(s3.get_object(Bucket=bucket, Key=key.group(1))["Body"].read())
    profiles = report["data"]["profiles"]
    # no capture object read: every one merged from its partial
    assert profiles["built"] == 0 and profiles["boundary"] == 0, profiles
    assert profiles["cached"] == profiles["objects"] == len(captures), profiles
    assert report["data"]["rows"] == 3 * len(rows)

    # A capture object that cannot be profiled: counted by the failure notifier, not mailed.
    mailed = subjects(home)
    bad = f"{captures[0].rsplit('/', 1)[0]}/broken.jsonl.gz"
    s3.put_object(Bucket=bucket, Key=bad, Body=b"\x1f\x8b\x08 not a whole gzip stream")

    def counted() -> float:
        now = datetime.now(UTC)
        got = cw.get_metric_statistics(
            Namespace="mlops/cancer-dx", MetricName="PartialProfileFailures",
            Statistics=["Sum"], Period=3600, StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
            Dimensions=[{"Name": "Monitor", "Value": MONITOR},
                        {"Name": "Endpoint", "Value": "predict"}])
        return sum(p["Sum"] for p in got["Datapoints"])

    assert until(counted, "the failed profiling's metric", 300) == 1.0
    assert subjects(home) == mailed  # no [FAILURE] mail: no run failed
    assert not [k for k in keys(s3, bucket, "capture-profiles/predict/") if "broken" in k]
    # and no [FAILURE] report: the only report is the run's
    assert [k for k in keys(s3, bucket, f"reports/{MONITOR}/")
            if k.endswith("report.json")] == [key.group(1)]


def registry(s3: Any) -> str:
    return next(b["Name"] for b in s3.list_buckets()["Buckets"]
                if s3.list_objects_v2(Bucket=b["Name"], Prefix="models/diagnosis/")
                .get("KeyCount"))


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", []))
