"""Profiled on landing: the S3 ``Object Created`` event EventBridge delivers is read for its
object, which is profiled into the partial a run would make (once: a partial already stored
is kept); events that are not about a capture object of the monitor's endpoint are skipped;
a failed profiling is counted by the failure notifier, never mailed nor reported."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from framework.compile.compiler import landing_pattern
from framework.local.scheduler import matches
from framework.monitoring.capture import ReadLog
from framework.monitoring.check import load_settings, profile_with
from framework.monitoring.failure import (
    PROFILE_METRIC,
    profile_failure,
    profiled_object,
)
from framework.monitoring.partial import Landed, landed, profile_key, profile_landed
from tests.monitoring.support import START, WINDOW, put_capture, records, spec, store_with_reference

KEY = "capture/score/dt=2024-05-01/score-capture-1-2024-05-01-00-00-00-ab12.jsonl.gz"

# The event as S3 sends it to EventBridge (the S3 user guide's "Object created" example, on
# a capture object of the registry bucket "b").
EVENT: dict[str, Any] = {
    "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created", "source": "aws.s3", "account": "111122223333",
    "time": "2021-11-12T00:00:00Z", "region": "ca-central-1",
    "resources": ["arn:aws:s3:::b"],
    "detail": {"version": "0", "bucket": {"name": "b"},
               "object": {"key": KEY, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                          "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                          "sequencer": "617f08299329d189"},
               "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
               "source-ip-address": "1.2.3.4", "reason": "PutObject"}}


def event(key: str = KEY, bucket: str = "b") -> dict[str, Any]:
    out = copy.deepcopy(EVENT)
    out["detail"]["object"]["key"] = key
    out["detail"]["bucket"]["name"] = bucket
    out["resources"] = [f"arn:aws:s3:::{bucket}"]
    return out


def test_an_object_created_event_names_its_object() -> None:
    assert landed(EVENT) == Landed("b", KEY, "PutObject")
    assert landed({**EVENT, "detail-type": "Object Deleted"}) is None
    for other in ({"source": "mlops.schedule", "monitor": "m", "time": "2024-05-02T00:00:00Z"},
                  {"profile_objects": [KEY]}, {"window": {"start": "a", "end": "b"}}, {}, None,
                  "text", {**EVENT, "source": "aws.codedeploy"}):
        assert landed(other) is None, other
    broken = copy.deepcopy(EVENT)
    del broken["detail"]["object"]["key"]
    with pytest.raises(ValueError, match="detail.object.key"):
        landed(broken)
    with pytest.raises(ValueError, match="detail.bucket.name"):
        landed({**EVENT, "detail": {"object": {"key": KEY}}})


def test_a_url_encoded_key_is_tried_decoded_too() -> None:
    assert Landed("b", KEY).candidates() == [KEY]
    encoded = KEY.replace("=", "%3D")
    assert Landed("b", encoded).candidates() == [encoded, KEY]


def test_the_compiled_pattern_matches_the_endpoints_captures_in_the_registry_only() -> None:
    pattern = landing_pattern("b", "score")
    assert matches(pattern, event())
    assert matches(pattern, {**event(), "detail": {**event()["detail"],
                                                   "reason": "CompleteMultipartUpload"}})
    assert not matches(pattern, event(key="capture/other/dt=2024-05-01/x.jsonl.gz"))
    assert not matches(pattern, event(key="capture/scorer/dt=2024-05-01/x.jsonl.gz"))
    assert not matches(pattern, event(key="capture-errors/score/x.gz"))
    assert not matches(pattern, event(key="capture-profiles/score/t/dt=2024-05-01/x.gz"))
    assert not matches(pattern, event(bucket="someone-elses"))
    assert not matches(pattern, {**event(), "detail-type": "Object Deleted"})


def _store_with_object() -> Any:
    store = store_with_reference()
    put_capture(store, records(np.random.default_rng(4), 60), name=KEY.rsplit("/", 1)[1][:-9])
    assert store.get(KEY) is not None
    return store


def test_the_landed_object_gets_the_partial_a_run_would_make_and_keeps_it() -> None:
    s = spec()
    run_store = _store_with_object()
    settings = load_settings(run_store, s)[0]
    profile_with(run_store, s, WINDOW, settings, ReadLog())  # the run's backfill
    pkey = profile_key(KEY, settings.tag)
    want = run_store.get(pkey)
    assert want is not None

    store = _store_with_object()
    obj = landed(EVENT)
    assert obj is not None
    done = profile_landed(store, obj, "b", "score", settings)
    assert done == {"object": KEY, "partial": pkey, "built": True, "rows": 60}
    assert store.get(pkey) == want  # byte for byte
    again = profile_landed(store, obj, "b", "score", settings)  # delivered twice
    assert again == {"object": KEY, "partial": pkey, "kept": True}
    # a run then merges it without reading the object
    log = ReadLog()
    _, facts = profile_with(store, s, WINDOW, settings, log)
    assert facts.profiles["cached"] == 1 and facts.profiles["built"] == 0


def test_what_is_not_an_endpoints_capture_is_skipped_and_a_gone_object_too() -> None:
    store = _store_with_object()
    settings = load_settings(store, spec())[0]
    assert profile_landed(store, Landed("other", KEY), "b", "score", settings) == {
        "object": KEY, "skipped": "not in the registry bucket (other)"}
    other = "capture/else/dt=2024-05-01/x.jsonl.gz"
    assert profile_landed(store, Landed("b", other), "b", "score", settings)["skipped"] == (
        "not a capture object of endpoint score")
    gone = "capture/score/dt=2024-05-01/gone.jsonl.gz"
    assert profile_landed(store, Landed("b", gone), "b", "score", settings)["skipped"] == (
        "the object is gone")
    encoded = Landed("b", KEY.replace("=", "%3D"))
    assert profile_landed(store, encoded, "b", "score", settings)["object"] == KEY
    before = set(store.objects)
    store.put("capture/score/dt=2024-05-01/bad.jsonl.gz", b"\x1f\x8b not gzip", "x")
    with pytest.raises(ValueError, match="bad.jsonl.gz: cannot be read"):
        profile_landed(store, Landed("b", "capture/score/dt=2024-05-01/bad.jsonl.gz"), "b",
                       "score", settings)
    assert set(store.objects) - before == {"capture/score/dt=2024-05-01/bad.jsonl.gz"}


FAILED = {
    "version": "1.0", "timestamp": "2024-05-02T00:00:07.120Z",
    "requestContext": {"requestId": "c0ffee", "condition": "RetriesExhausted",
                       "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:f:live",
                       "approximateInvokeCount": 1},
    "requestPayload": EVENT,
    "responseContext": {"statusCode": 200, "executedVersion": "3",
                        "functionError": "Unhandled"},
    "responsePayload": {"errorType": "ValueError",
                        "errorMessage": f"{KEY}: cannot be read (BadGzipFile: Not a gzipped "
                                        "file)"},
}


def test_a_failed_profiling_is_counted_not_reported_nor_mailed() -> None:
    assert profiled_object(FAILED) == KEY
    run = {**FAILED, "requestPayload": {"source": "mlops.schedule", "monitor": "m-drift",
                                        "time": "2024-05-02T00:00:00Z"}}
    assert profiled_object(run) is None
    when = START + timedelta(days=1, minutes=1)
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="eu-west-1")
        done = profile_failure(spec(), FAILED, KEY, cw, now=when)
        got = cw.get_metric_statistics(
            Namespace="mlops/proj", MetricName=PROFILE_METRIC, Statistics=["Sum"], Period=60,
            StartTime=when - timedelta(minutes=5), EndTime=when + timedelta(minutes=5),
            Dimensions=[{"Name": "Monitor", "Value": "m-drift"},
                        {"Name": "Endpoint", "Value": "score"}])
        assert [p["Sum"] for p in got["Datapoints"]] == [1.0]
    assert done["status"] == "profile_failed" and done["metric"]["published"] is True
    assert done["message"] == (
        f"m-drift: {KEY} was not profiled when it landed: ValueError: {KEY}: cannot be read "
        "(BadGzipFile: Not a gzipped file) (RetriesExhausted, 1 attempt); the next run "
        "profiles it")
