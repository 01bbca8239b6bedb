"""Governance enforced by the registry's storage, from the CLI on the embedded local AWS (one
deploy): approvals count by identity (two by one identity do not satisfy min 2, distinct; the
author may not approve under separation_of_duties); a deleted or altered audit record is
reported by `mlops audit --verify` and its locked version survives; an overwrite of a released
artifact leaves the released bytes retrievable (and restorable), their version undeletable;
destroy still empties the bucket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Project
from tests.e2e.test_deploy import session_for

RULE = """    approvals:
      production: {min: 2, distinct: true, separation_of_duties: true}
"""


def test_approvals_audit_chain_and_released_bytes(project: Project,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("MLOPS_IDENTITY", raising=False)
    project.edit("    tags: {dataset", RULE + "    tags: {dataset")
    project.mlops("deploy")
    session = session_for(project)
    s3: Any = session.target.conn.client("s3")
    bucket = session.bucket

    # The registry bucket: Object Lock on, its policy stored, released files retained.
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert {st["Sid"] for st in policy["Statement"]} >= {
        "DenyOverwritingReleasedVersionsAndAudit", "DenyDeletingReleasedVersionsAndAudit"}
    artifact = "models/diagnosis/1.0.0/model.onnx"
    assert s3.head_object(Bucket=bucket, Key=artifact)["ObjectLockMode"] == "GOVERNANCE"
    author = json.loads(s3.get_object(Bucket=bucket, Key="models/diagnosis/1.0.0/"
                                      "metadata.json")["Body"].read())["registered_by"]
    assert author["source"] == "sts" and author["principal"].startswith("arn:aws:")

    # Approvals: the author may not approve; one identity under two names counts once.
    refused = project.mlops("models", "approve", "diagnosis@1.0.0", "--by", "me", check=False)
    assert refused.returncode == 2 and "may not approve it" in refused.stderr
    monkeypatch.setenv("MLOPS_IDENTITY", "alice")
    approved = project.mlops("models", "approve", "diagnosis@1.0.0", "--by", "Dr. Alice")
    assert "as arn:aws:iam::123456789012:user/alice" in approved.stdout
    project.mlops("models", "approve", "diagnosis@1.0.0", "--by", "Dr. Bob")
    denied = project.mlops("models", "promote", "diagnosis@1.0.0", "--alias", "production",
                           check=False)
    assert denied.returncode == 2
    assert "needs 2 approval(s) not by whoever registered it; it has 1" in denied.stderr
    assert "already counted for this identity" in denied.stderr
    monkeypatch.setenv("MLOPS_IDENTITY", "bob")
    project.mlops("models", "approve", "diagnosis@1.0.0", "--by", "Dr. Bob")
    project.mlops("models", "promote", "diagnosis@1.0.0", "--alias", "production")
    monkeypatch.delenv("MLOPS_IDENTITY")

    # The audit trail is intact, then a record is hidden and another altered.
    intact = project.mlops("audit", "--verify")
    assert "intact" in intact.stdout
    records = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/")
                     ["Contents"])
    hidden, altered = records[0], records[1]
    [kept] = s3.list_object_versions(Bucket=bucket, Prefix=hidden)["Versions"]
    s3.delete_object(Bucket=bucket, Key=hidden)
    with pytest.raises(ClientError) as locked:
        s3.delete_object(Bucket=bucket, Key=hidden, VersionId=kept["VersionId"])
    assert locked.value.response["Error"]["Code"] == "AccessDenied"
    forged = json.loads(s3.get_object(Bucket=bucket, Key=altered)["Body"].read())
    forged["outcome"] = "failed"
    s3.put_object(Bucket=bucket, Key=altered, Body=json.dumps(forged).encode())
    verdict = project.mlops("audit", "--verify", "-o", "json", check=False)
    assert verdict.returncode == 7
    report = json.loads(verdict.stdout)
    found = {(f["problem"], f["key"]) for f in report["findings"]}
    assert found == {("hidden", hidden), ("altered", altered)}
    assert all("survives" in f["detail"] for f in report["findings"])
    table = project.mlops("audit", "--verify", check=False)
    assert table.returncode == 7 and "not intact: 2 finding(s)" in table.stderr
    assert "Traceback" not in table.stderr
    survivor = s3.get_object(Bucket=bucket, Key=hidden, VersionId=kept["VersionId"])
    assert json.loads(survivor["Body"].read())["seq"] >= 1

    # A raw overwrite of the released artifact (AWS refuses it through the bucket policy; the
    # local AWS stores the policy without evaluating it) leaves the released bytes retrievable.
    [released] = s3.list_object_versions(Bucket=bucket, Prefix=artifact)["Versions"]
    s3.put_object(Bucket=bucket, Key=artifact, Body=b"not the model")
    with pytest.raises(ClientError) as undeletable:
        s3.delete_object(Bucket=bucket, Key=artifact, VersionId=released["VersionId"])
    assert undeletable.value.response["Error"]["Code"] == "AccessDenied"
    original = (project.root / "examples/breast_cancer/artifacts/model.onnx").read_bytes()
    assert s3.get_object(Bucket=bucket, Key=artifact,
                         VersionId=released["VersionId"])["Body"].read() == original
    assert project.mlops("plan", check=False).returncode == 7  # the damage is refused
    project.mlops("models", "restore", "diagnosis@1.0.0")
    assert s3.get_object(Bucket=bucket, Key=artifact)["Body"].read() == original

    # Destroy still empties the bucket: locked versions go with a governance bypass.
    project.mlops("destroy", "--yes")
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=bucket)
