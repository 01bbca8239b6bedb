"""Monitoring at scale on the embedded local AWS: a scheduled monitor run killed by its timeout
reaches the monitor's on-failure destination (the event invoke config compiled beside it),
whose notifier writes the [FAILURE] report, mails it and counts it; a window of many objects
without partial profiles is profiled by parallel invocations of the monitor function."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from typing import Any

import numpy as np

from framework.runtime.clients import Connection
from tests.e2e.conftest import Project, http

MONITOR = "diagnosis-drift"


def test_a_monitor_killed_by_its_timeout_mails_a_failure(project: Project) -> None:
    # A one-second timeout and a ten-year window: listing 3,651 days of captures takes longer.
    project.edit("notify: {email: [oncology-ops@example.com], when: drift}",
                 "notify: {email: [oncology-ops@example.com], when: [drift, failure]}\n"
                 "    timeout: 1\n    window: 3650d")
    project.mlops("deploy")
    home = project.root / ".mlops" / "local"
    daemon = json.loads((home / "daemon.json").read_text())
    lam = Connection("us-east-1", daemon["control_url"], dummy_credentials=True).client("lambda")
    fn = next(f["FunctionName"] for f in lam.list_functions()["Functions"]
              if f["FunctionName"].endswith(f"mon-{MONITOR}"))
    assert lam.get_function_configuration(FunctionName=fn)["Timeout"] == 1
    config = lam.get_function_event_invoke_config(FunctionName=fn, Qualifier="live")
    assert config["MaximumRetryAttempts"] == 0
    destination = config["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination.endswith(f"mon-{MONITOR}-failed:live")

    status, _, answer = http("POST", f"{daemon['gateway_url']}/_mlops/clock",
                             json.dumps({"advance": 86400}).encode())
    assert status == 200, answer
    (fire,) = [f for f in answer["fires"] if f["rule"].endswith(MONITOR)]
    assert fire["ok"] is False and fire["timed_out"] is True, fire
    assert fire["error"]["errorType"] == "Sandbox.Timedout"
    assert fire["attempts"] == 1  # no retry: a run that timed out would again
    assert fire["destination"]["arn"] == destination and fire["destination"]["ok"], fire
    assert fire["destination"]["payload"]["status"] == "failure"

    mails = sorted((home / "outbox").glob("*.eml"))
    subjects = [str(BytesParser(policy=policy.default).parsebytes(m.read_bytes())["subject"])
                for m in mails]
    failed = [s for s in subjects if s.startswith(f"[FAILURE] {MONITOR}: ")]
    assert len(failed) == 1, subjects
    assert "the run timed out before writing its report: Sandbox.Timedout: Task timed out " \
           "after 1.00 seconds" in failed[0]

    history = project.mlops("monitor", "history", MONITOR).stdout
    assert "failure" in history.lower(), history
    cw = Connection("us-east-1", daemon["control_url"],
                    dummy_credentials=True).client("cloudwatch")
    now = datetime.now(UTC) + timedelta(days=2)
    got = cw.get_metric_statistics(
        Namespace="mlops/cancer-dx", MetricName="MonitorFailures", Statistics=["Sum"],
        Period=86400 * 3, StartTime=now - timedelta(days=5), EndTime=now,
        Dimensions=[{"Name": "Monitor", "Value": MONITOR}, {"Name": "Endpoint",
                                                           "Value": "predict"}])
    assert sum(p["Sum"] for p in got["Datapoints"]) == 1.0, got


def test_a_big_window_is_profiled_by_parallel_invocations_then_merged(project: Project) -> None:
    """fan_out.objects: 1 — every object of the window goes to a worker (an invocation of the
    deployed monitor function), then the run merges the stored partial profiles. The objects
    land while the monitor's landing rule is disabled (as objects that landed before the
    monitor existed): none is profiled on landing, the run backfills them all. Over a whole
    day (fan_out.partials: 2), the merge itself is handed to workers two partials each."""
    project.edit("notify: {email: [oncology-ops@example.com], when: drift}",
                 "notify: {email: [oncology-ops@example.com], when: drift}\n"
                 "    fan_out: {objects: 1, workers: 4, partials: 2}")
    project.mlops("deploy")
    home = project.root / ".mlops" / "local"
    daemon = json.loads((home / "daemon.json").read_text())
    s3 = Connection("us-east-1", daemon["control_url"], dummy_credentials=True).client("s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"]
                  if s3.list_objects_v2(Bucket=b["Name"], Prefix="models/diagnosis/")
                  .get("KeyCount"))
    meta_key = next(o["Key"] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix="models/diagnosis/")["Contents"]
        if o["Key"].endswith("/metadata.json"))
    meta = json.loads(s3.get_object(Bucket=bucket, Key=meta_key)["Body"].read())
    events = Connection("us-east-1", daemon["control_url"], dummy_credentials=True).client(
        "events")
    (landing,) = [r["Name"] for r in events.list_rules()["Rules"]
                  if r["Name"].endswith(f"{MONITOR}.landed")]
    events.disable_rule(Name=landing)
    assert http("POST", f"{daemon['gateway_url']}/_mlops/refresh", b"")[0] == 200
    names = [f["name"] for f in meta["features"]]
    rng = np.random.default_rng(3)
    now = datetime.now(UTC)

    def put_objects(end: datetime) -> None:
        """Four capture objects, as Firehose would deliver them, in the 40 minutes before
        ``end``."""
        for i in range(4):
            put_object(i, end)

    def put_object(i: int, end: datetime) -> None:
        lines = []
        for j in range(50):
            when = (end - timedelta(minutes=40 - i * 5, seconds=j)).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ")
            lines.append(json.dumps({
                "msg": "capture", "request_id": f"r{i}-{j}", "row": 0, "time": when,
                "endpoint": "predict", "model": "diagnosis", "version": meta["version"],
                "lambda_version": "1", "latency_ms": 2.5,
                "inputs": {n: float(rng.normal(10, 2)) for n in names},
                "prediction": "benign", "probabilities": [0.2, 0.8],
                "classes": ["malignant", "benign"]}))
        s3.put_object(Bucket=bucket, Key=f"capture/predict/dt={end:%Y-%m-%d}/x{i}.jsonl.gz",
                      Body=gzip.compress(("\n".join(lines) + "\n").encode()))

    def run(start: datetime, end: datetime) -> dict[str, Any]:
        out = project.mlops("monitor", "run", MONITOR, "--window",
                            f"{start.isoformat(timespec='seconds')}.."
                            f"{end.isoformat(timespec='seconds')}", check=False).stdout
        key = re.search(r"report: s3://\S+?/(\S+) ", out)
        assert key, out
        report: dict[str, Any] = json.loads(
            s3.get_object(Bucket=bucket, Key=key.group(1))["Body"].read())
        return report

    put_objects(now)
    report = run(now - timedelta(hours=1), now + timedelta(minutes=1))
    profiles = report["data"]["profiles"]
    assert profiles["workers"] == 4 and profiles["fanned"] == 4, profiles
    assert profiles["built"] == 0 and profiles["cached"] == 4
    assert report["data"]["rows"] == 200
    stored = s3.list_objects_v2(Bucket=bucket, Prefix="capture-profiles/predict/")
    assert stored["KeyCount"] == 4

    # A whole day's window: its four objects profiled by four workers, then its partials
    # merged by two workers (two each); the run adds up their segments and stores the rollup
    day = datetime(2026, 11, 29, tzinfo=UTC)
    put_objects(day + timedelta(hours=12))
    first = run(day, day + timedelta(days=1))
    profiles = first["data"]["profiles"]
    assert (profiles["workers"], profiles["fanned"]) == (4, 4), profiles
    assert (profiles["merge_workers"], profiles["merged_there"]) == (2, 4), profiles
    assert profiles["cached"] == 4 and profiles["rollups_stored"] == 1, profiles
    assert first["data"]["rows"] == 200 and not first["issues"], first["issues"]
    later = run(day, day + timedelta(days=1))  # the day's rollup: the same report
    assert later["data"]["profiles"]["rollups"] == 1, later["data"]["profiles"]
    assert later["data"]["rows"] == 200 and later["drift"] == first["drift"]
