"""Identity-bound approvals on a real local AWS: an approval counts by the verified identity
of whoever ran it (the STS answer; locally MLOPS_IDENTITY), never by its --by name; rules
count distinct principals, from named roles, never the version's author under
separation_of_duties."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework.config.models import Config
from framework.registry import identity, refs, service
from framework.registry.errors import ApprovalRequiredError, RegistryInputError
from framework.registry.store import Registry
from tests.registry.conftest import put

ACCOUNT = "123456789012"
REF = refs.ModelRef("m", "1.0.0")


def config(rule: dict[str, Any]) -> Config:
    return Config.model_validate({
        "project": "p", "models": {"m": {
            "version": "1.0.0", "artifact": "m.onnx", "features": [{"name": "x"}],
            "approvals": {"production": rule}}}})


def acting(reg: Registry, who: str) -> Registry:
    """``reg`` acting as ``who``: a name, or an STS ARN (as AWS would verify it)."""
    reg.identity = (identity.from_arn(who) if who.startswith("arn:")
                    else identity.configured(who, ACCOUNT))
    return reg


def session(role: str, name: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}"


def test_two_approvals_by_one_identity_do_not_make_two(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a")
    rule = config({"min": 2, "distinct": True})
    acting(reg, "alice").approve("m", "1.0.0", "Dr. Alice", "reviewed")
    acting(reg, "alice").approve("m", "1.0.0", "Dr. Bob", "reviewed again, other name")
    with pytest.raises(ApprovalRequiredError) as refused:
        service.promote(reg, rule, REF, "production")
    assert "it has 1" in str(refused.value)
    assert "Dr. Bob (arn:aws:iam::123456789012:user/alice): already counted" in \
        str(refused.value)
    # What the record holds: the verified principal beside the display name.
    [first, _] = reg.approvals("m", "1.0.0")
    assert first["by"] == "Dr. Alice"
    assert first["identity"] == {"principal": f"arn:aws:iam::{ACCOUNT}:user/alice",
                                 "name": "alice", "role": None, "account": ACCOUNT,
                                 "source": "MLOPS_IDENTITY"}
    # Every approval counts when the rule says so.
    assert service.promote(reg, config({"min": 2, "distinct": False}), REF,
                           "production")["version"] == "1.0.0"


def test_a_second_identity_completes_the_rule(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a")
    rule = config({"min": 2})
    acting(reg, "alice").approve("m", "1.0.0", "alice", "ok")
    acting(reg, "bob").approve("m", "1.0.0", "bob", "ok")
    assert service.promote(reg, rule, REF, "production")["version"] == "1.0.0"


def test_roles_admit_the_sessions_of_named_roles_only(reg: Registry) -> None:
    put(reg, "m", "1.0.0", b"a")
    rule = config({"min": 2, "roles": ["ml-approver", f"arn:aws:iam::{ACCOUNT}:role/risk-*"]})
    acting(reg, session("ml-approver", "alice")).approve("m", "1.0.0", "alice", "ok")
    acting(reg, session("data-scientist", "carol")).approve("m", "1.0.0", "carol", "ok")
    acting(reg, f"arn:aws:iam::{ACCOUNT}:user/dave").approve("m", "1.0.0", "dave", "ok")
    with pytest.raises(ApprovalRequiredError) as refused:
        service.promote(reg, rule, REF, "production")
    text = str(refused.value)
    assert "in role ml-approver or arn:aws:iam::123456789012:role/risk-*" in text
    assert "carol: not in role" in text and "dave: not in role" in text
    assert "it has 1 (so far: alice)" in text
    acting(reg, session("risk-officers", "erin")).approve("m", "1.0.0", "erin", "ok")
    assert service.promote(reg, rule, REF, "production")["version"] == "1.0.0"


def test_the_author_of_a_version_may_not_approve_it(reg: Registry) -> None:
    acting(reg, session("ml-engineer", "alice"))
    put(reg, "m", "1.0.0", b"a")
    meta = reg.metadata("m", "1.0.0")
    assert meta["registered_by"]["principal"] == session("ml-engineer", "alice")
    rule = config({"min": 1, "separation_of_duties": True})
    with pytest.raises(ApprovalRequiredError, match="registered m@1.0.0 and may not approve"):
        service.approve(reg, rule, REF, "alice", "my own model")
    assert reg.approvals("m", "1.0.0") == []
    # An approval the author wrote all the same (an older CLI, or no rule at the time) does
    # not count either.
    reg.approve("m", "1.0.0", "alice", "written around the rule")
    with pytest.raises(ApprovalRequiredError, match="registered this version"):
        service.promote(reg, rule, REF, "production")
    acting(reg, session("ml-engineer", "bob"))
    service.approve(reg, rule, REF, "bob", "reviewed")
    assert service.promote(reg, rule, REF, "production")["version"] == "1.0.0"


def test_a_version_without_a_recorded_author_fails_separation_of_duties(
        reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"a")
    key = "models/m/1.0.0/metadata.json"
    meta = json.loads(s3.get_object(Bucket=reg.bucket, Key=key)["Body"].read())
    del meta["registered_by"]  # as versions registered before identities were recorded
    s3.put_object(Bucket=reg.bucket, Key=key, Body=json.dumps(meta).encode())
    acting(reg, "bob").approve("m", "1.0.0", "bob", "ok")
    with pytest.raises(ApprovalRequiredError, match="no verified author"):
        service.promote(reg, config({"separation_of_duties": True}), REF, "production")


def test_approvals_recorded_before_identities_count_by_their_actor(
        reg: Registry, s3: Any) -> None:
    put(reg, "m", "1.0.0", b"a")
    for n, actor in enumerate(("arn:aws:iam::123456789012:user/a",
                               "arn:aws:iam::123456789012:user/a",
                               "arn:aws:iam::123456789012:user/b")):
        s3.put_object(Bucket=reg.bucket, Key=f"models/m/1.0.0/approvals/old-{n}.json",
                      Body=json.dumps({"id": f"old-{n}", "by": f"name {n}", "alias": None,
                                       "time": f"2025-01-0{n + 1}T00:00:00Z",
                                       "actor": actor}).encode())
    status = service.approval_status(reg, config({"min": 3}).models["m"].approvals[
        "production"], "m", "1.0.0", "production")
    assert len(status.approvers) == 2 and not status.satisfied


def test_the_configured_identity_stands_in_off_aws_only() -> None:
    moto = "arn:aws:iam::123456789012:user/moto"
    env = {"MLOPS_IDENTITY": "dr-house"}
    local = identity.resolve(moto, configurable=True, environ=env)
    assert (local.principal, local.name, local.source) == (
        "arn:aws:iam::123456789012:user/dr-house", "dr-house", "MLOPS_IDENTITY")
    warnings: list[str] = []
    on_aws = identity.resolve(session("ml-approver", "alice"), configurable=False,
                              environ=env, warnings=warnings)
    assert on_aws.principal == session("ml-approver", "alice")
    assert on_aws.role == "ml-approver" and on_aws.source == "sts"
    assert warnings and "ignored against AWS" in warnings[0]
    assert identity.resolve(moto, configurable=True, environ={}).principal == moto
    as_role = identity.resolve(moto, configurable=True,
                               environ={"MLOPS_IDENTITY": session("risk-x", "erin")})
    assert as_role.role == "risk-x" and as_role.name == "erin"
    with pytest.raises(RegistryInputError, match="is not a name"):
        identity.resolve(moto, configurable=True, environ={"MLOPS_IDENTITY": "two words"})


def test_the_local_control_plane_is_not_aws(s3: Any) -> None:
    assert identity.off_aws(s3)
    import boto3

    aws = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x",
                       aws_secret_access_key="y")
    assert not identity.off_aws(aws)


def test_rules_are_checked_at_load() -> None:
    with pytest.raises(ValueError, match="disagree"):
        config({"min": 2, "required": 3})
    assert config({"required": 2}).models["m"].approvals["production"].needed == 2
    assert config({}).models["m"].approvals["production"].needed == 1
