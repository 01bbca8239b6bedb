"""The audit trail is a chain under Object Lock, checked by ``mlops audit --verify``'s walk,
on a real local AWS (moto enforces governance retention on a version delete; it does not
evaluate bucket policies: see tests/resources/test_bucket_policy.py)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework.apply.audit import RETENTION_TAG, AuditLog, bucket_retention, link_key
from framework.registry.audit_verify import verify


def _bucket(s3: Any, *, lock: bool = True, days: int | None = 1) -> str:
    name = f"audit-{uuid.uuid4().hex[:12]}"
    if lock:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if days is not None:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [
            {"Key": RETENTION_TAG, "Value": str(days)}]})
    return name


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
                  .get("Contents", []))


def _log(s3: Any, bucket: str, tmp_path: Path, writer: str = "mlops") -> AuditLog:
    return AuditLog(s3=s3, bucket=bucket, local_file=tmp_path / f"{writer}.jsonl",
                    writer=writer)


def test_records_are_chained_locked_and_verified(s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, days=3)
    log = _log(s3, bucket, tmp_path)
    records = [log.record(action=f"step {i}", actor="tester") for i in range(3)]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev"] is None
    keys = _keys(s3, bucket, "audit/")
    bodies = [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]
    import hashlib

    assert json.loads(bodies[1])["prev"] == hashlib.sha256(bodies[0]).hexdigest()
    link = json.loads(s3.get_object(Bucket=bucket, Key=link_key("mlops", 2))["Body"].read())
    assert link["key"] == keys[1] and link["sha256"] == hashlib.sha256(bodies[1]).hexdigest()
    head = s3.head_object(Bucket=bucket, Key=keys[0])
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"]
    # The local mirror has the same bytes.
    assert [json.loads(line) for line in log.local_file.read_text().splitlines()] == \
        [json.loads(b) for b in bodies]
    # A new log (another command) finds the chain's end and goes on.
    assert _log(s3, bucket, tmp_path).record(action="next")["seq"] == 4
    result = verify(s3, bucket)
    assert result.intact and result.chains == {"mlops": 4} and result.records == 4


def test_racing_writers_get_distinct_numbers_in_one_chain(s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, days=None)
    logs = [_log(s3, bucket, tmp_path / str(i)) for i in range(3)]
    errors: list[BaseException] = []

    def write(log: AuditLog) -> None:
        try:
            for i in range(4):
                log.record(action=f"race {i}")
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(_keys(s3, bucket, "audit-chain/mlops/")) == 12
    result = verify(s3, bucket)
    assert result.intact, [f.detail for f in result.findings]


def test_a_deleted_record_is_reported_and_its_locked_version_survives(
        s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, days=1)
    log = _log(s3, bucket, tmp_path)
    for i in range(3):
        log.record(action=f"step {i}")
    victim = _keys(s3, bucket, "audit/")[1]
    [version] = s3.list_object_versions(Bucket=bucket, Prefix=victim)["Versions"]
    # Governance retention: the version itself cannot be deleted...
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=victim, VersionId=version["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # ...a plain delete only hides it behind a delete marker.
    s3.delete_object(Bucket=bucket, Key=victim)
    assert victim not in _keys(s3, bucket, "audit/")
    [finding] = verify(s3, bucket).findings
    assert (finding.problem, finding.chain, finding.seq) == ("hidden", "mlops", 2)
    assert f"its original version {version['VersionId']} survives" in finding.detail
    kept = s3.get_object(Bucket=bucket, Key=victim, VersionId=version["VersionId"])
    assert json.loads(kept["Body"].read())["action"] == "step 1"


def test_an_altered_record_is_reported_with_its_surviving_original(
        s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, days=1)
    log = _log(s3, bucket, tmp_path)
    for i in range(2):
        log.record(action=f"step {i}", outcome="succeeded")
    victim = _keys(s3, bucket, "audit/")[0]
    original = s3.get_object(Bucket=bucket, Key=victim)["Body"].read()
    forged = json.loads(original)
    forged["outcome"] = "failed"
    # moto does not evaluate the bucket policy that refuses this write on AWS.
    s3.put_object(Bucket=bucket, Key=victim, Body=json.dumps(forged, sort_keys=True).encode())
    [finding] = verify(s3, bucket).findings
    assert (finding.problem, finding.seq) == ("altered", 1)
    assert "original version" in finding.detail and "survives" in finding.detail


def test_removed_records_and_forged_links_are_reported(s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, lock=False, days=None)  # no Object Lock: versions can go for good
    assert bucket_retention(s3, bucket).days == 0
    log = _log(s3, bucket, tmp_path)
    for i in range(4):
        log.record(action=f"step {i}")
    keys = _keys(s3, bucket, "audit/")
    # Record 2 and its link removed with every version.
    for key in (keys[1], link_key("mlops", 2)):
        for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
    # Record 3's file removed with every version (its link stays).
    for v in s3.list_object_versions(Bucket=bucket, Prefix=keys[2])["Versions"]:
        s3.delete_object(Bucket=bucket, Key=keys[2], VersionId=v["VersionId"])
    # A record that claims a number no link gives it.
    s3.put_object(Bucket=bucket, Key="audit/2026/01/01/20260101T000000000000Z-forged.json",
                  Body=json.dumps({"time": "2026-01-01T00:00:00Z", "chain": "mlops",
                                   "seq": 9, "prev": None}).encode())
    # A record written before the chain existed is counted, not judged.
    s3.put_object(Bucket=bucket, Key="audit/2025/01/01/20250101T000000000000Z-old.json",
                  Body=json.dumps({"time": "2025-01-01T00:00:00Z", "action": "deploy"}).encode())
    result = verify(s3, bucket)
    found = {(f.problem, f.seq) for f in result.findings}
    assert found == {("removed", 2), ("removed", 3), ("unlinked", 9)}, result.findings
    assert result.unchained == 1 and not result.intact


def test_a_record_forged_into_the_chain_breaks_it(s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, days=None)
    log = _log(s3, bucket, tmp_path)
    log.record(action="real")
    # A writer who takes number 2 without naming record 1's digest as its predecessor.
    body = json.dumps({"time": "2026-01-01T00:00:00Z", "chain": "mlops", "seq": 2,
                       "prev": "0" * 64}).encode()
    import hashlib

    key = "audit/2026/01/01/20260101T000000000000Z-forged.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key=link_key("mlops", 2), Body=json.dumps(
        {"seq": 2, "writer": "mlops", "key": key, "prev": "0" * 64,
         "sha256": hashlib.sha256(body).hexdigest()}).encode())
    [finding] = verify(s3, bucket).findings
    assert (finding.problem, finding.seq) == ("broken", 2)


def test_a_monitor_writes_its_own_chain_under_its_own_keys(s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, days=None)
    _log(s3, bucket, tmp_path).record(action="deploy")
    rec = _log(s3, bucket, tmp_path, writer="mon-drift").record(action="rollback")
    assert rec["chain"] == "mon-drift" and rec["seq"] == 1
    [mine] = [k for k in _keys(s3, bucket, "audit/") if k.endswith(".mon-drift.json")]
    assert _keys(s3, bucket, "audit-chain/mon-drift/") == [link_key("mon-drift", 1)]
    assert mine.startswith("audit/")
    result = verify(s3, bucket)
    assert result.intact and result.chains == {"mlops": 1, "mon-drift": 1}


def test_without_a_registry_only_the_local_mirror_is_written(tmp_path: Path) -> None:
    log = AuditLog(s3=None, bucket="gone", local_file=tmp_path / "audit.jsonl")
    rec = log.record(action="destroy")
    assert "seq" not in rec and log.read_local() == [rec]


def test_the_head_hint_lags_at_most_ten_links_and_the_end_is_found_past_it(
        s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, days=None)
    log = _log(s3, bucket, tmp_path)
    for i in range(25):
        log.record(action=f"step {i}")
    hint = json.loads(s3.get_object(Bucket=bucket, Key="audit-head/mlops.json")["Body"].read())
    assert hint["seq"] == 20  # rewritten at 10 and 20, not after every record
    assert _log(s3, bucket, tmp_path).record(action="next")["seq"] == 26
    assert verify(s3, bucket).intact
