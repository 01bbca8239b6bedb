"""The registry bucket's policy, checked as a document: moto stores a bucket policy but never
evaluates one, so the local AWS cannot show that AWS refuses an overwrite of a released
version or a deleted audit record. A small evaluator of the statements' Deny rules (IAM's
wildcards, Null, Bool and ArnNotLike conditions) answers, for each request mlops and an
attacker would make, whether the policy denies it. cfn-lint and checkov check the same
statements in the synthesized template (tests/synth)."""

from __future__ import annotations

import copy
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from framework.compile import compile_config
from framework.compile.compiler import registry_policy
from framework.config.models import Config
from tests.compile.test_compile import SPEC, context

BUCKET = "fraud-registry-123456789012-us-east-1"
ACCOUNT = "123456789012"
BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/mlops-break-glass"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"


# S3 operations authorized by another IAM action: a multipart upload is s3:PutObject.
IAM_ACTION = {"s3:CompleteMultipartUpload": "s3:PutObject",
              "s3:CreateMultipartUpload": "s3:PutObject", "s3:UploadPart": "s3:PutObject"}


@dataclass(frozen=True)
class Request:
    operation: str  # "s3:" + the API operation, or the IAM action itself
    key: str
    principal: str = DEPLOYER
    headers: dict[str, str] = field(default_factory=dict)
    secure: bool = True

    @property
    def action(self) -> str:
        return IAM_ACTION.get(self.operation, self.operation)

    def context(self) -> dict[str, str]:
        ctx = {"aws:PrincipalArn": self.principal,
               "aws:SecureTransport": "true" if self.secure else "false"}
        if self.operation in ("s3:PutObject", "s3:CompleteMultipartUpload"):
            ctx["s3:ObjectCreationOperation"] = "true"
        elif self.operation in ("s3:CreateMultipartUpload", "s3:UploadPart"):
            ctx["s3:ObjectCreationOperation"] = "false"
        if "If-None-Match" in self.headers:
            ctx["s3:if-none-match"] = self.headers["If-None-Match"]
        if "If-Match" in self.headers:
            ctx["s3:if-match"] = self.headers["If-Match"]
        return ctx


def _like(pattern: str, value: str) -> bool:
    """IAM's wildcards: * any run of characters ('/' included), ? one character."""
    return re.fullmatch(fnmatch.translate(pattern), value) is not None


def _list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition(op: str, key: str, wanted: list[str], ctx: dict[str, str]) -> bool:
    got = ctx.get(key)
    if op == "Null":
        return (got is None) == (wanted[0] == "true")
    if op == "Bool":
        return got is not None and got in wanted
    if op == "ArnNotLike":
        return got is not None and not any(_like(w, got) for w in wanted)
    if op == "ArnLike":
        return got is not None and any(_like(w, got) for w in wanted)
    raise AssertionError(f"the evaluator does not know the condition operator {op}")


def denied(policy: dict[str, Any], req: Request) -> list[str]:
    """The Sids of the statements that deny ``req``."""
    arn = f"arn:aws:s3:::{BUCKET}/{req.key}" if req.key else f"arn:aws:s3:::{BUCKET}"
    ctx = req.context()
    out = []
    for st in policy["Statement"]:
        assert st["Effect"] == "Deny", "the registry policy grants nothing"
        if not any(_like(a.lower(), req.action.lower()) for a in _list(st["Action"])):
            continue
        if not any(_like(r, arn) for r in _list(st["Resource"])):
            continue
        if all(_condition(op, key, _list(values), ctx)
               for op, keys in st.get("Condition", {}).items() for key, values in keys.items()):
            out.append(st["Sid"])
    return out


POLICY = registry_policy(BUCKET, [BREAK_GLASS])
RELEASED = ["models/fraud-clf/1.2.0/model.onnx", "models/fraud-clf/1.2.0/metadata.json",
            "models/fraud-clf/1.2.0/reference.json",
            "models/fraud-clf/1.2.0/approvals/20260101T000000Z-ab.json",
            "models/fraud-clf/history/production/00000002.json"]
TRAIL = ["audit/2026/01/01/20260101T000000000000Z-abcdef012345.json",
         "audit/2026/01/01/20260101T000000000000Z-abcdef012345.mon-drift.json",
         "audit-chain/mlops/000000000007.json"]
MUTABLE = ["models/fraud-clf/aliases/production.json", "state/fraud/dev.json",
           "locks/fraud/dev.json", "capture/score/dt=2026-01-01/x.gz",
           "feedback/score/dt=2026-01-01/x.json.gz", "reports/drift/1/report.json",
           "dashboard/fraud/dev/index.html", "audit-head/mlops.json",
           "code/" + "c" * 64 + ".zip"]
NEW = {"If-None-Match": "*"}


@pytest.mark.parametrize("key", RELEASED + TRAIL)
def test_an_overwrite_of_what_was_released_is_denied(key: str) -> None:
    assert denied(POLICY, Request("s3:PutObject", key)) == [
        "DenyOverwritingReleasedVersionsAndAudit"]
    # If-Match (a compare-and-swap) is an overwrite too.
    assert denied(POLICY, Request("s3:PutObject", key, headers={"If-Match": '"e"'}))
    assert denied(POLICY, Request("s3:CompleteMultipartUpload", key))
    # What mlops writes: only if absent.
    assert denied(POLICY, Request("s3:PutObject", key, headers=NEW)) == []
    # The parts of a multipart upload carry no condition header; its completion must.
    assert denied(POLICY, Request("s3:UploadPart", key)) == []


@pytest.mark.parametrize("key", RELEASED + TRAIL)
@pytest.mark.parametrize("action", ["s3:DeleteObject", "s3:DeleteObjectVersion",
                                    "s3:BypassGovernanceRetention"])
def test_deleting_what_was_released_is_denied_but_to_the_break_glass_role(
        key: str, action: str) -> None:
    assert denied(POLICY, Request(action, key)) == ["DenyDeletingReleasedVersionsAndAudit"]
    assert denied(POLICY, Request(action, key, principal=BREAK_GLASS)) == []
    assert denied(POLICY, Request("s3:PutObject", key, principal=BREAK_GLASS)) == []


@pytest.mark.parametrize("key", MUTABLE)
def test_what_moves_is_not_guarded(key: str) -> None:
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert denied(POLICY, Request(action, key)) == [], (action, key)
    assert denied(POLICY, Request("s3:GetObject", key)) == []


def test_plain_http_is_denied_everywhere() -> None:
    for key in (RELEASED[0], MUTABLE[1], ""):
        assert denied(POLICY, Request("s3:GetObject", key, secure=False)) == [
            "DenyInsecureTransport"]


def test_without_a_break_glass_role_nobody_is_exempt() -> None:
    policy = registry_policy(BUCKET, [])
    assert "ArnNotLike" not in str(policy)
    for principal in (DEPLOYER, BREAK_GLASS):
        assert denied(policy, Request("s3:DeleteObjectVersion", TRAIL[0], principal=principal))


def test_the_evaluator_can_fail() -> None:
    """A policy missing its statements denies nothing (the tests above would fail)."""
    broken = copy.deepcopy(POLICY)
    broken["Statement"] = [s for s in broken["Statement"] if s["Sid"] == "DenyInsecureTransport"]
    assert denied(broken, Request("s3:PutObject", RELEASED[0])) == []
    assert denied(broken, Request("s3:DeleteObjectVersion", TRAIL[0])) == []


def test_compile_names_the_break_glass_roles_and_orders_the_policy_after_the_versions() -> None:
    spec = copy.deepcopy(SPEC)
    spec["registry"] = {"lock": {"retention_days": 30, "break_glass": [
        "mlops-break-glass", "arn:aws:iam::210987654321:role/auditors"]}}
    graph = compile_config(Config.model_validate(spec), context())
    res = graph.resources["registry-policy"]
    assert res.kind == "s3_bucket_policy"
    assert set(res.depends_on) == {"registry", "model.fraud-clf@1.2.0"}
    [statement] = [s for s in res.props["policy"]["Statement"]
                   if s["Sid"] == "DenyDeletingReleasedVersionsAndAudit"]
    assert statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == [
        "arn:aws:iam::123456789012:role/mlops-break-glass",
        "arn:aws:iam::210987654321:role/auditors"]
    bucket = graph.resources["registry"].props
    assert bucket["object_lock"] is True
    assert bucket["tags"]["mlops:lock-retention-days"] == "30"


def test_a_malformed_break_glass_role_is_refused_at_load() -> None:
    spec = copy.deepcopy(SPEC)
    spec["registry"] = {"lock": {"break_glass": ["arn:aws:iam::1:user/alice"]}}
    with pytest.raises(ValueError, match="is not an IAM role"):
        Config.model_validate(spec)


def test_capture_retention_compiles_to_a_lifecycle_rule() -> None:
    spec = copy.deepcopy(SPEC)
    spec["endpoints"]["score"]["capture"] = {"sample_rate": 0.5, "retain_days": 90}
    graph = compile_config(Config.model_validate(spec), context())
    assert graph.resources["registry"].props["lifecycle"] == [
        {"id": f"mlops-{root}-score", "prefix": f"{root}/score/", "expire_days": 90}
        for root in ("capture", "capture-errors", "capture-profiles", "feedback",
                     "feedback-errors")]
