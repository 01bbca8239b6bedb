"""``mlops doctor``'s checks against the embedded local AWS (a real moto server), with AWS's
semantics where the check is about AWS (sandbox, quotas, verification), plus stubbed answers
for what moto does not implement."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework import doctor, local
from framework.config.models import Config, TargetKind
from framework.doctor import FAIL, OK, WARN
from framework.runtime.clients import Connection
from tests.ports import free_port_pair


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connection]:
    home = tmp_path_factory.mktemp("doctor-aws")
    running = local.start(home, free_port_pair())
    yield local.connection(running, "eu-west-1")
    local.stop(home)


def config(**notify: Any) -> Config:
    return Config.model_validate({
        "project": "fraud",
        "models": {"clf": {"version": "1.0.0", "artifact": "m.onnx",
                           "features": [{"name": "x", "type": "float"}]}},
        "endpoints": {"score": {"model": "clf", "route": "POST /score", "concurrency": 3}},
        "monitors": {"drift": {"endpoint": "score", "notify": notify}}})


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_services_answer_on_the_local_aws(conn: Connection) -> None:
    checks = doctor.service_checks(conn)
    assert [c.name for c in checks] == ["Lambda", "IAM", "API Gateway", "EventBridge", "SES",
                                        "CloudWatch", "CloudWatch Logs", "Firehose", "CodeDeploy"]
    assert all(c.status == OK for c in checks), checks


def test_every_service_the_kinds_use_is_probed() -> None:
    from framework import resources

    probed = {service for _label, service, _action, _probe in doctor.SERVICES}
    # the registry bucket's own check, and the credentials' (sts: a version's author)
    assert set(resources.SERVICES) - probed == {"s3", "sts"}
    assert "cloudwatch" in probed  # rollouts' alarms, no kind of its own


def test_unreachable_control_plane_fails_with_a_hint() -> None:
    dead = Connection(region="eu-west-1", endpoint_url=f"http://127.0.0.1:{free_port_pair()}",
                      dummy_credentials=True, max_attempts=1, connect_timeout=1)
    checks = doctor.service_checks(dead)
    assert all(c.status == FAIL and "cannot reach" in c.detail for c in checks), checks
    assert "endpoint_url" in checks[0].hint


def test_bucket_missing_then_present(conn: Connection) -> None:
    bucket = f"doc-{uuid.uuid4().hex[:10]}"
    missing = doctor.bucket_check(conn, bucket, "eu-west-1")
    assert missing.status == OK and "does not exist yet" in missing.detail
    conn.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={
        "LocationConstraint": "eu-west-1"})
    assert doctor.bucket_check(conn, bucket, "eu-west-1").detail.endswith("is accessible")
    elsewhere = doctor.bucket_check(conn, bucket, "us-east-2")
    assert elsewhere.status == WARN and "exists in eu-west-1" in elsewhere.detail


def test_region() -> None:
    assert doctor.region_check(TargetKind.aws, "eu-west-1").status == OK
    assert doctor.region_check(TargetKind.aws, "xx-nowhere-9").status == WARN
    assert doctor.region_check(TargetKind.local, "xx-nowhere-9").status == OK


def test_ses_on_aws_semantics_sandbox_and_verification(conn: Connection) -> None:
    # moto reports the sandbox quota (200 a day), as AWS does for a new account.
    sender, to = f"ops-{uuid.uuid4().hex[:6]}@example.com", "risk@example.com"
    cfg = config(email=[to], sender=sender)
    checks = by_name(doctor.ses_checks(conn, TargetKind.aws, cfg))
    sandbox = checks["SES sandbox"]
    assert sandbox.status == WARN and "only to verified addresses" in sandbox.detail
    assert "production access" in sandbox.hint
    # moto has no GetAccountSendingEnabled: the check says so rather than guessing.
    assert checks["SES sending"].status == WARN
    assert "does not answer" in checks["SES sending"].detail
    assert checks[f"SES {sender}"].status == WARN
    assert "sender must be verified" in checks[f"SES {sender}"].detail
    assert "every recipient must be verified" in checks[f"SES {to}"].detail
    conn.client("ses").verify_email_identity(EmailAddress=sender)
    after = by_name(doctor.ses_checks(conn, TargetKind.aws, cfg))
    assert after[f"SES {sender}"].status == OK and "verified (sender" in \
        after[f"SES {sender}"].detail


def test_ses_on_the_local_target_says_what_is_true(conn: Connection) -> None:
    checks = by_name(doctor.ses_checks(conn, TargetKind.local, config(email=["a@example.com"])))
    assert all(c.status == OK for c in checks.values()), checks
    assert "outbox" in checks["SES sandbox"].detail
    assert "does not implement" in checks["SES sending"].detail
    assert by_name(doctor.ses_checks(conn, TargetKind.local, config()))[
        "SES addresses"].detail == "no monitor sends e-mail"


class _Stub:
    """A connection whose clients answer from a table (what moto does not implement)."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.region = "eu-west-1"

    def client(self, service: str) -> Any:
        answers = self.answers

        class Client:
            def __getattr__(self, name: str) -> Any:
                value = answers[name]
                if isinstance(value, Exception):
                    def fail(**_: Any) -> Any:
                        raise value
                    return fail
                return lambda **_: value

        return Client()


def test_quotas(conn: Connection) -> None:
    unknown = doctor.quota_checks(conn, TargetKind.aws, config())
    assert unknown[0].status == WARN and "GetAccountSettings" in unknown[0].detail
    small = _Stub(get_account_settings={
        "AccountLimit": {"ConcurrentExecutions": 10, "UnreservedConcurrentExecutions": 10,
                         "TotalCodeSize": 80 * 2**30},
        "AccountUsage": {"TotalCodeSize": 79 * 2**30, "FunctionCount": 4}})
    got = by_name(doctor.quota_checks(small, TargetKind.aws, config()))  # type: ignore[arg-type]
    # 3 (the endpoint's) reserved of 10 leaves 7 < 10: Lambda would refuse.
    assert got["Lambda concurrency"].status == FAIL
    assert "reserve 3 (the endpoints' `concurrency`)" in got["Lambda concurrency"].detail
    assert "Service Quotas" in got["Lambda concurrency"].hint
    assert got["Lambda code storage"].status == WARN
    big = _Stub(get_account_settings={
        "AccountLimit": {"ConcurrentExecutions": 1000, "TotalCodeSize": 80 * 2**30},
        "AccountUsage": {"TotalCodeSize": 2**20}})
    got = by_name(doctor.quota_checks(big, TargetKind.aws, config()))  # type: ignore[arg-type]
    assert {c.status for c in got.values()} == {OK}
    local_ = doctor.quota_checks(conn, TargetKind.local, config())
    assert local_[0].status == OK and "MLOPS_LOCAL_CONCURRENCY" in local_[0].detail
    # reserving is opt-in: without `concurrency`, a new account's 10 are enough
    plain = config()
    plain = plain.model_copy(update={"endpoints": {
        n: ep.model_copy(update={"concurrency": None}) for n, ep in plain.endpoints.items()}})
    got = by_name(doctor.quota_checks(small, TargetKind.aws, plain))  # type: ignore[arg-type]
    assert got["Lambda concurrency"].status != FAIL


def settings(concurrent: int, unreserved: int) -> dict[str, Any]:
    return {"AccountLimit": {"ConcurrentExecutions": concurrent, "TotalCodeSize": 80 * 2**30,
                             "UnreservedConcurrentExecutions": unreserved},
            "AccountUsage": {"TotalCodeSize": 2**20}}


def test_concurrency_against_the_declared_reservations() -> None:
    def check(concurrent: int, unreserved: int) -> doctor.Check:
        stub = _Stub(get_account_settings=settings(concurrent, unreserved))
        got = doctor.quota_checks(stub, TargetKind.aws, config())  # type: ignore[arg-type]
        return by_name(got)["Lambda concurrency"]

    assert check(12, 12).status == FAIL  # 12 - 3 = 9 < 10, whatever else is reserved
    ok_in_all = check(400, 12)  # 400 in all, but others reserved most: 12 - 3 < 10
    assert ok_in_all.status == WARN and "fine only if this stage is deployed" in \
        ok_in_all.detail
    assert check(1000, 1000).status == OK
    assert check(50, 50).status == WARN  # low for load, though it fits


def test_the_sandbox_as_ses_states_it() -> None:
    """sesv2 GetAccount says whether the account has production access; the quota is only
    the clue where the control plane does not answer it."""
    base = {"get_send_quota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0},
            "get_account_sending_enabled": {"Enabled": True},
            "get_identity_verification_attributes": {"VerificationAttributes": {
                "s@example.com": {"VerificationStatus": "Success"},
                "r@example.com": {"VerificationStatus": "Pending"}}}}
    cfg = config(email=["r@example.com"], sender="s@example.com")
    sandboxed = _Stub(**base, get_account={"ProductionAccessEnabled": False})
    got = by_name(doctor.ses_checks(sandboxed, TargetKind.aws, cfg))  # type: ignore[arg-type]
    assert got["SES sandbox"].status == WARN and "only to verified" in got["SES sandbox"].detail
    assert got["SES r@example.com"].status == WARN  # an unverified recipient, in the sandbox
    assert "every recipient must be verified" in got["SES r@example.com"].detail
    assert got["SES s@example.com"].status == OK
    production = _Stub(**base, get_account={"ProductionAccessEnabled": True})
    got = by_name(doctor.ses_checks(production, TargetKind.aws, cfg))  # type: ignore[arg-type]
    assert got["SES sandbox"].status == OK and got["SES r@example.com"].status == OK


def test_sending_disabled_fails() -> None:
    stub = _Stub(get_send_quota={"Max24HourSend": 50000.0, "MaxSendRate": 14.0},
                 get_account={"ProductionAccessEnabled": True},
                 get_account_sending_enabled={"Enabled": False},
                 get_identity_verification_attributes={"VerificationAttributes": {}})
    got = by_name(doctor.ses_checks(stub, TargetKind.aws,  # type: ignore[arg-type]
                                    config(email=["r@example.com"], sender="s@example.com")))
    assert got["SES sandbox"].status == OK and "production access" in got["SES sandbox"].detail
    assert got["SES sending"].status == FAIL
    assert got["SES r@example.com"].status == OK  # outside the sandbox recipients need nothing
    assert got["SES s@example.com"].status == WARN


def test_missing_credentials_fail_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.workflow import Workspace

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / "mlops.yaml").write_text(
        "project: fraud\nstages:\n  prod: {target: aws, region: eu-west-1}\n")
    checks = doctor.diagnose(Workspace.open(tmp_path / "mlops.yaml", "prod"))
    assert checks[0].name == "credentials" and checks[0].status == FAIL
    # No keys: "Unable to locate credentials"; keys cached by an earlier test's boto3
    # session: no network here. Either way the first check fails and says why.
    assert "cannot reach the aws control plane" in checks[0].detail
    assert "AWS_PROFILE" in checks[0].hint
    assert checks[1].status == OK and checks[-1].detail.startswith("skipped")


def test_deployed_artifacts_are_verified(conn: Connection, tmp_path: Path) -> None:
    """One row per version the stage serves: ok while the stored bytes are the recorded ones,
    a failure naming the version and the way back (exit code 7) once they are not."""
    import hashlib
    from types import SimpleNamespace

    from framework.plan.state import Entry, State
    from framework.registry.store import Registry
    from framework.workflow import state_store

    s3 = conn.client("s3")
    bucket = f"doc-{uuid.uuid4().hex[:10]}"
    ws: Any = SimpleNamespace(project="fraud", stage="dev", home=tmp_path / ".mlops",
                              loaded=SimpleNamespace(path=tmp_path / "mlops.yaml"))
    reg = Registry(s3=s3, bucket=bucket)
    reg.ensure_bucket("eu-west-1")
    assert [c.detail for c in doctor.artifact_checks(ws, conn, bucket)] == [
        "nothing deployed on this stage yet"]
    data = b"onnx bytes"
    sha = hashlib.sha256(data).hexdigest()
    reg.register("clf", "1.0.0", data, {"name": "clf", "version": "1.0.0", "sha256": sha},
                 {"author": "t"})
    state = State(project="fraud", stage="dev", lineage="L").record(
        "model.clf", Entry("model_version", {"name": "clf", "version": "1.0.0"}, {}))
    state_store(ws, s3, bucket).save(state)
    [ok] = doctor.artifact_checks(ws, conn, bucket)
    assert ok.name == "artifact clf@1.0.0" and ok.status == OK and sha[:16] in ok.detail
    s3.put_object(Bucket=bucket, Key="models/clf/1.0.0/model.onnx", Body=b"other")
    [bad] = doctor.artifact_checks(ws, conn, bucket)
    assert bad.status == FAIL and bad.exit_code == 7 and "damaged" in bad.detail
    assert "mlops models restore clf@1.0.0" in bad.hint
