"""Retrain requests in the registry: pending until a version passed its gates; a failed
attempt is recorded beside the request and leaves it pending."""

from __future__ import annotations

import json
from typing import Any

from framework.monitoring.actions import request_retrain
from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import S3Store
from framework.retrain import mark_done, pending, record_attempt


def request(s3: Any, bucket: str, run_id: str, model: str = "diagnosis") -> str:
    spec = MonitorSpec(name=f"{model}-drift", project="p", stage="dev", endpoint="predict",
                       model=model, version="1.0.0", bucket=bucket)
    done = request_retrain(S3Store(s3, bucket), spec, run_id, f"reports/x/{run_id}/report.json")
    return str(done["request"])


def test_a_request_stays_pending_until_done_and_keeps_its_failed_attempts(
        s3: Any, bucket: str) -> None:
    key = request(s3, bucket, "run-1")
    other = request(s3, bucket, "run-2", model="fraud")
    (found,) = pending(s3, bucket, "diagnosis")
    assert (found.key, found.model, found.attempts) == (key, "diagnosis", [])
    assert found.body["monitor"] == "diagnosis-drift" and found.body["run_id"] == "run-1"
    assert [r.key for r in pending(s3, bucket)] == [key, other]

    record_attempt(s3, bucket, key, {"version": "1.0.1", "failure": "recall 0.8 misses >=0.85",
                                     "at": "2026-03-02T12:00:00Z"})
    record_attempt(s3, bucket, key, {"version": "1.0.1", "failure": "training failed",
                                     "at": "2026-03-03T12:00:00Z"})
    (found,) = pending(s3, bucket, "diagnosis")  # the attempts are not requests
    assert [a["failure"] for a in found.attempts] == ["recall 0.8 misses >=0.85",
                                                      "training failed"]
    assert found.last_failure() == "2026-03-03T12:00:00Z: 1.0.1 training failed"

    mark_done(s3, bucket, key, {"version": "1.0.2"})
    assert pending(s3, bucket, "diagnosis") == []
    assert [r.key for r in pending(s3, bucket)] == [other]
    done = json.loads(s3.get_object(Bucket=bucket, Key=key.replace(".json", ".done.json"))
                      ["Body"].read())
    assert done == {"version": "1.0.2"}


def test_a_request_that_is_not_json_is_still_listed(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="retrain/diagnosis/broken.json", Body=b"{not json")
    (found,) = pending(s3, bucket)
    assert found.model == "diagnosis" and "not a JSON object" in found.body["note"]
