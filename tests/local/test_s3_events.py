"""S3's events to EventBridge on the local AWS (``framework.local.s3events``): each object
created in a bucket with ``EventBridgeConfiguration`` — PutObject, CopyObject,
CompleteMultipartUpload — is an ``Object Created`` event in AWS's shape, handed to the local
bus, where a monitor's landing rule (as compile writes it) invokes the monitor's alias; other
buckets and other writes (tags, ACLs) send nothing; the configuration reads back as S3 answers
it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from framework.compile.compiler import landing_pattern
from framework.local import s3events
from framework.local.scheduler import Rule, Scheduler, Target

ACCOUNT, REGION = "123456789012", "us-east-1"
MONITOR = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:cancer-dx-dev-mon-drift:live"
KEY = "capture/predict/dt=2026-12-01/cancer-dx-dev-predict-capture-1-2026-12-01-00-00-00-a.gz"


@pytest.fixture
def events() -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []
    with mock_aws():
        s3events.start(got.append)
        s3 = boto3.client("s3", region_name=REGION)
        try:
            yield s3, got
        finally:
            s3events.stop()


def wait_for(got: list[Any], n: int) -> list[Any]:
    """The events once ``n`` have arrived (they are handed over on a thread of their own)."""
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def test_each_object_created_in_an_eventbridge_bucket_is_an_event(
        events: tuple[Any, list[dict[str, Any]]]) -> None:
    s3, got = events
    s3.create_bucket(Bucket="registry")
    s3.put_bucket_versioning(Bucket="registry", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="quiet")
    s3.put_object(Bucket="quiet", Key=KEY, Body=b"not sent: no EventBridge configuration")
    s3.put_bucket_notification_configuration(
        Bucket="registry", NotificationConfiguration={"EventBridgeConfiguration": {}})
    assert s3.get_bucket_notification_configuration(Bucket="registry")[
        "EventBridgeConfiguration"] == {}
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(
        Bucket="quiet")

    put = s3.put_object(Bucket="registry", Key=KEY, Body=b"x" * 10)
    s3.put_object_tagging(Bucket="registry", Key=KEY,
                          Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})  # not a creation
    s3.copy_object(Bucket="registry", Key=KEY + ".copy",
                   CopySource={"Bucket": "registry", "Key": KEY})
    upload = s3.create_multipart_upload(Bucket="registry", Key="big/object")
    part = s3.upload_part(Bucket="registry", Key="big/object", UploadId=upload["UploadId"],
                          PartNumber=1, Body=b"y" * (5 * 1024 * 1024))
    s3.complete_multipart_upload(Bucket="registry", Key="big/object",
                                 UploadId=upload["UploadId"], MultipartUpload={
                                     "Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    # Handed over in the order they were made: the tags and "quiet" would be among these.
    first, copied, assembled = wait_for(got, 3)[:3]
    assert [e["detail"]["reason"] for e in got] == ["PutObject", "CopyObject",
                                                    "CompleteMultipartUpload"]
    assert [e["detail"]["object"]["key"] for e in got] == [KEY, KEY + ".copy", "big/object"]
    assert set(first) == {"version", "id", "detail-type", "source", "account", "time",
                          "region", "resources", "detail"}
    assert (first["source"], first["detail-type"], first["account"], first["region"]) == (
        "aws.s3", "Object Created", ACCOUNT, REGION)
    assert first["resources"] == ["arn:aws:s3:::registry"]
    assert first["time"].endswith("Z") and len(first["time"]) == 20
    detail = first["detail"]
    assert set(detail) == {"version", "bucket", "object", "request-id", "requester",
                           "source-ip-address", "reason"}
    assert detail["bucket"] == {"name": "registry"}
    assert detail["object"]["size"] == 10
    assert detail["object"]["etag"] == put["ETag"].strip('"')
    assert detail["object"]["version-id"] == put["VersionId"]
    assert assembled["detail"]["object"]["size"] == 5 * 1024 * 1024
    sequencers = [int(e["detail"]["object"]["sequencer"], 16) for e in got]
    assert sequencers == sorted(set(sequencers))


def test_a_monitors_landing_rule_gets_its_endpoints_captures(
        events: tuple[Any, list[dict[str, Any]]], tmp_path: Path) -> None:
    s3, got = events
    calls: list[tuple[str, Any]] = []
    rule = Rule(arn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/cancer-dx-dev-drift.landed",
                name="cancer-dx-dev-drift.landed", region=REGION, account=ACCOUNT,
                expression="", enabled=True, targets=(Target(id="profile", arn=MONITOR),),
                pattern=landing_pattern("registry", "predict"))
    scheduler = Scheduler(tmp_path, lambda: [rule],
                          lambda arn, payload: calls.append((arn, payload)) or {"ok": True},
                          workers=1)
    routed: list[Any] = []
    s3events.start(lambda event: routed.extend(scheduler.route(event)))
    try:
        s3.create_bucket(Bucket="registry")
        s3.put_bucket_notification_configuration(
            Bucket="registry", NotificationConfiguration={"EventBridgeConfiguration": {}})
        s3.put_object(Bucket="registry", Key="capture-errors/predict/x.gz", Body=b"e")
        s3.put_object(Bucket="registry", Key="models/m/1.0.0/model.onnx", Body=b"m")
        s3.put_object(Bucket="registry", Key=KEY, Body=b"c")
        # in order: the two other objects' events came first, and matched no rule
        (fire,) = wait_for(routed, 1)
        assert fire.outcome(timeout=10)["ok"] is True
        ((arn, payload),) = calls
        assert arn == MONITOR
        assert payload["detail"]["object"]["key"] == KEY  # the event itself, as EventBridge
    finally:
        scheduler.close()
