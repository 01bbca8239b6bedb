"""iam_role: a role a service assumes (a function, Firehose, CloudWatch Logs) with one inline
policy from the templates in infra/iam."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import (
    CfnResource,
    Deployed,
    Kind,
    Outputs,
    Props,
    Refused,
    Stack,
    cfn_tags,
)

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class IamRole(Props):
    kind = "iam_role"

    role_name: str
    trust_policy: dict[str, Any]
    policy_name: str
    policy: dict[str, Any]
    tags: dict[str, str]


def create(ctx: Context, p: IamRole) -> Outputs:
    iam = ctx.client("iam")
    resp = ctx.attempt(lambda: iam.create_role(
        RoleName=p.role_name, AssumeRolePolicyDocument=json.dumps(p.trust_policy),
        Tags=cfn_tags(p.tags)), codes={"EntityAlreadyExists"})
    if isinstance(resp, Refused):
        return update(ctx, p, None)
    iam.put_role_policy(RoleName=p.role_name, PolicyName=p.policy_name,
                        PolicyDocument=json.dumps(p.policy))
    return {"arn": resp["Role"]["Arn"], "role_name": p.role_name}


def update(ctx: Context, p: IamRole, before: Deployed[IamRole] | None) -> Outputs:
    iam = ctx.client("iam")
    iam.update_assume_role_policy(RoleName=p.role_name,
                                  PolicyDocument=json.dumps(p.trust_policy))
    if before is not None and before.props.policy_name != p.policy_name:
        ctx.ignore_missing(lambda: iam.delete_role_policy(
            RoleName=p.role_name, PolicyName=before.props.policy_name))
    iam.put_role_policy(RoleName=p.role_name, PolicyName=p.policy_name,
                        PolicyDocument=json.dumps(p.policy))
    arn = iam.get_role(RoleName=p.role_name)["Role"]["Arn"]
    return {"arn": arn, "role_name": p.role_name}


def delete(ctx: Context, d: Deployed[IamRole], _destroying: bool) -> None:
    iam, name = ctx.client("iam"), d.props.role_name
    ctx.ignore_missing(lambda: iam.delete_role_policy(RoleName=name,
                                                      PolicyName=d.props.policy_name))
    ctx.ignore_missing(lambda: iam.delete_role(RoleName=name))


def exists(ctx: Context, d: Deployed[IamRole]) -> bool:
    ctx.client("iam").get_role(RoleName=d.props.role_name)
    return True


def cloudformation(p: IamRole) -> CfnResource:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": p.role_name, "AssumeRolePolicyDocument": p.trust_policy,
        "Policies": [{"PolicyName": p.policy_name, "PolicyDocument": p.policy}],
        "Tags": cfn_tags(p.tags)}}


KIND = Kind(
    props=IamRole, services=("iam",), replace_on=frozenset({"role_name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
