"""The registry bucket under Object Lock on a real local AWS: released versions' files are
retained, an overwrite leaves the released bytes retrievable, a bucket deployed before Object
Lock gets it on its next deploy, captures expire by lifecycle rule, a destroy still empties
the bucket."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework import local
from framework.apply.audit import RETENTION_TAG, AuditLog
from framework.plan.state import Entry
from framework.providers.aws import AwsProvider
from framework.registry.store import Registry
from tests.registry.conftest import put


def _registry(s3: Any, tmp_path: Path, days: int) -> Registry:
    bucket = f"lock-{uuid.uuid4().hex[:12]}"
    reg = Registry(s3=s3, bucket=bucket, actor="tester",
                   audit=AuditLog(s3=s3, bucket=bucket, local_file=tmp_path / "audit.jsonl"))
    reg.ensure_bucket("us-east-1", days)
    return reg


def test_released_files_are_retained_and_an_overwrite_leaves_them_retrievable(
        s3: Any, tmp_path: Path) -> None:
    reg = _registry(s3, tmp_path, days=2)
    assert s3.get_object_lock_configuration(Bucket=reg.bucket)[
        "ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    data = b"onnx bytes v1"
    put(reg, "m", "1.0.0", data)
    reg.approve("m", "1.0.0", "dr-house", "ok")
    reg.set_alias(reg.alias("m", "production"), "1.0.0", action="promote")
    prefix = "models/m/1.0.0/"
    locked = [o["Key"] for o in s3.list_objects_v2(Bucket=reg.bucket, Prefix="models/m/")
              ["Contents"] if not o["Key"].endswith("aliases/production.json")]
    names = {k.rsplit("/", 1)[-1] for k in locked}
    assert names >= {"model.onnx", "metadata.json", "00000001.json"}
    for key in locked:
        head = s3.head_object(Bucket=reg.bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
    # The alias object is the one thing that moves: not retained.
    alias = s3.head_object(Bucket=reg.bucket, Key="models/m/aliases/production.json")
    assert "ObjectLockMode" not in alias

    key = prefix + "model.onnx"
    [original] = s3.list_object_versions(Bucket=reg.bucket, Prefix=key)["Versions"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=reg.bucket, Key=key, VersionId=original["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # A raw overwrite (refused by the bucket policy on AWS; moto does not evaluate it) only
    # stacks a version on top: the released bytes stay retrievable, and restore puts them back.
    s3.put_object(Bucket=reg.bucket, Key=key, Body=b"tampered")
    kept = s3.get_object(Bucket=reg.bucket, Key=key, VersionId=original["VersionId"])
    assert kept["Body"].read() == data
    assert reg.damage("m", "1.0.0") is not None
    assert reg.restore("m", "1.0.0").startswith("object version")
    assert reg.damage("m", "1.0.0") is None


def test_without_a_retention_tag_nothing_is_retained(s3: Any, tmp_path: Path) -> None:
    reg = _registry(s3, tmp_path, days=0)
    put(reg, "m", "1.0.0", b"x")
    head = s3.head_object(Bucket=reg.bucket, Key="models/m/1.0.0/model.onnx")
    assert "ObjectLockMode" not in head


@pytest.fixture
def provider(aws: local.LocalAWS, tmp_path: Path) -> AwsProvider:
    return AwsProvider(local.connection(aws, "us-east-1"), tmp_path)


def _props(bucket: str, **extra: Any) -> dict[str, Any]:
    return {"bucket": bucket, "versioning": True, "region": "us-east-1",
            "tags": {"mlops:project": "p", RETENTION_TAG: "1"}, **extra}


def test_a_bucket_deployed_before_object_lock_gets_it_on_the_next_deploy(
        provider: AwsProvider, s3: Any) -> None:
    bucket = f"old-{uuid.uuid4().hex[:12]}"
    old = {"bucket": bucket, "versioning": True, "region": "us-east-1",
           "tags": {"mlops:project": "p"}}  # what a deploy of before wrote
    out = provider.create("s3_bucket", old)
    s3.put_object(Bucket=bucket, Key="state/p/dev.json", Body=b"{}")
    with pytest.raises(ClientError):
        s3.get_object_lock_configuration(Bucket=bucket)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "their-own", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
         "Expiration": {"Days": 3}}]})

    new = _props(bucket, object_lock=True, lifecycle=[
        {"id": "mlops-capture-predict", "prefix": "capture/predict/", "expire_days": 30}])
    out = provider.update("s3_bucket", new, Entry("s3_bucket", old, out))
    assert not provider.warnings, provider.warnings
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock == {"ObjectLockEnabled": "Enabled"}  # no default retention: see s3_bucket.py
    rules = {r["ID"]: r for r in
             s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {"their-own", "mlops-capture-predict"}
    capture = rules["mlops-capture-predict"]
    assert capture["Filter"]["Prefix"] == "capture/predict/"
    assert capture["Expiration"]["Days"] == 30
    assert capture["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    # The audit log now retains what it writes.
    AuditLog(s3=s3, bucket=bucket, local_file=provider.root / "a.jsonl").record(action="x")
    [record] = s3.list_objects_v2(Bucket=bucket, Prefix="audit/")["Contents"]
    assert s3.head_object(Bucket=bucket, Key=record["Key"])["ObjectLockMode"] == "GOVERNANCE"

    # retain_days dropped: mlops' rule goes, the user's stays.
    after = _props(bucket, object_lock=True, lifecycle=[])
    provider.update("s3_bucket", after, Entry("s3_bucket", new, out))
    rules = {r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules == {"their-own"}

    # A destroy empties the bucket, locked versions included (governance bypass).
    provider.delete(Entry("s3_bucket", after, out), destroying=True)
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=bucket)


def test_the_registry_policy_is_stored_and_removed(provider: AwsProvider, s3: Any) -> None:
    import json

    from framework.compile.compiler import registry_policy

    bucket = f"pol-{uuid.uuid4().hex[:12]}"
    provider.create("s3_bucket", _props(bucket, object_lock=True, lifecycle=[]))
    policy = registry_policy(bucket, [])
    props = {"bucket": bucket, "policy": policy}
    out = provider.create("s3_bucket_policy", props)
    assert provider.exists(Entry("s3_bucket_policy", props, out))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    provider.delete(Entry("s3_bucket_policy", props, out), destroying=True)
    assert not provider.exists(Entry("s3_bucket_policy", props, out))


def test_a_version_left_half_registered_is_completed(s3: Any, tmp_path: Path) -> None:
    reg = _registry(s3, tmp_path, days=1)
    s3.put_object(Bucket=reg.bucket, Key="models/m/1.0.0/model.onnx", Body=b"left over")
    data = b"the real bytes"
    put(reg, "m", "1.0.0", data)
    got = s3.get_object(Bucket=reg.bucket, Key="models/m/1.0.0/model.onnx")["Body"].read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
