"""A missing object is missing whether S3 says 404 or 403: without ``s3:ListBucket`` S3 answers
a GET or HEAD of a missing key with 403 AccessDenied, so as not to tell whether it exists.
Every reader of the registry bucket maps that in one place (``framework.monitoring.store.
missing``); a Stubber answers as S3 does."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from framework.apply.store import StateStore
from framework.monitoring.store import S3Store, missing
from framework.registry.store import Registry


def s3_denying(times: int, code: str = "AccessDenied", status: int = 403) -> tuple[object, Stubber]:
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="k",
                      aws_secret_access_key="s")
    stub = Stubber(s3)
    for _ in range(times):
        stub.add_client_error("get_object", code, "Access Denied", status)
    stub.activate()
    return s3, stub


@pytest.mark.parametrize(("code", "status"), [
    ("AccessDenied", 403), ("403", 403), ("NoSuchKey", 404), ("404", 404), ("NotFound", 404)])
def test_403_and_404_both_mean_missing(code: str, status: int) -> None:
    exc = ClientError({"Error": {"Code": code, "Message": ""},
                       "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")
    assert missing(exc)


def test_other_errors_are_not_missing() -> None:
    throttled = ClientError({"Error": {"Code": "SlowDown", "Message": ""},
                             "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
    assert not missing(throttled)
    assert not missing(ValueError("404"))


def test_the_monitor_store_reads_403_as_missing() -> None:
    s3, stub = s3_denying(1)
    assert S3Store(s3, "fraud-models").get("reports/drift/history.json") is None
    stub.assert_no_pending_responses()


def test_a_real_failure_still_raises() -> None:
    s3, _ = s3_denying(1, "InternalError", 500)
    with pytest.raises(ClientError):
        S3Store(s3, "fraud-models").get("k")


def test_state_lock_holder_and_registry_read_403_as_missing(tmp_path: Path) -> None:
    s3, stub = s3_denying(2)
    store = StateStore(s3=s3, bucket="fraud-models", project="fraud", stage="dev",
                       cache_dir=tmp_path)
    assert store.holder() is None
    assert Registry(s3=s3, bucket="fraud-models")._get("models/clf/aliases/prod.json") is None
    stub.assert_no_pending_responses()


def test_deployed_state_missing_behind_403_is_no_state(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="k",
                      aws_secret_access_key="s")
    stub = Stubber(s3)
    stub.add_response("head_bucket", {})
    stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
    # ... and where states were kept before they were keyed by project
    stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
    stub.activate()
    store = StateStore(s3=s3, bucket="fraud-models", project="fraud", stage="dev",
                       cache_dir=tmp_path)
    state = store.load()
    assert state.resources == {} and state.lineage == ""
    stub.assert_no_pending_responses()
