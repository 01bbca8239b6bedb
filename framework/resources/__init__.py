"""Resource kinds: one module each, registered in one table.

A kind's module holds everything about it: its typed properties (a frozen dataclass; compile
builds them, so a misspelt property fails at compile time), its replace rule and flags (read
by the plan), its provider calls (create, update, delete, exists, and replace when it is not
delete then create; ``framework.providers.aws`` runs them), its CloudFormation form (read by
``framework.synth``) and what it records in ``mlops.lock``.

``TABLE`` is in the order a fresh deploy creates kinds; ``graph.KINDS``, the plan's rules, the
provider's and synth's dispatch, the lock file and ``mlops doctor`` derive from it. A kind it
does not name is an error everywhere (``UnknownKindError``). To add a kind: write its module
(``ses_identity.py`` is the smallest), add its ``KIND`` here, then a compile rule in
``framework/compile/compiler.py``; ``tests/resources`` checks that it has every part.
"""

from __future__ import annotations

from typing import Any

from framework.resources import (
    alias_deployment,
    api_integration,
    api_route,
    api_stage,
    cloudwatch_alarm,
    codedeploy_app,
    codedeploy_deployment_config,
    codedeploy_deployment_group,
    firehose_stream,
    http_api,
    iam_role,
    lambda_alias,
    lambda_event_invoke_config,
    lambda_function,
    lambda_layer,
    lambda_permission,
    lambda_version,
    log_group,
    log_subscription,
    model_version,
    s3_bucket,
    s3_bucket_policy,
    s3_object,
    schedule_rule,
    schedule_target,
    ses_identity,
)
from framework.resources.alias_deployment import AliasDeployment
from framework.resources.api_integration import ApiIntegration
from framework.resources.api_route import ApiRoute
from framework.resources.api_stage import ApiStage
from framework.resources.base import ABSENT, Kind, Props, PropsError, UnknownKindError
from framework.resources.cloudwatch_alarm import CloudwatchAlarm
from framework.resources.codedeploy_app import CodedeployApp
from framework.resources.codedeploy_deployment_config import CodedeployDeploymentConfig
from framework.resources.codedeploy_deployment_group import CodedeployDeploymentGroup
from framework.resources.firehose_stream import FirehoseStream
from framework.resources.http_api import HttpApi
from framework.resources.iam_role import IamRole
from framework.resources.lambda_alias import LambdaAlias
from framework.resources.lambda_event_invoke_config import LambdaEventInvokeConfig
from framework.resources.lambda_function import LambdaFunction
from framework.resources.lambda_layer import LambdaLayer
from framework.resources.lambda_permission import LambdaPermission
from framework.resources.lambda_version import LambdaVersion
from framework.resources.log_group import LogGroup
from framework.resources.log_subscription import LogSubscription
from framework.resources.model_version import ModelVersion
from framework.resources.s3_bucket import S3Bucket
from framework.resources.s3_bucket_policy import S3BucketPolicy
from framework.resources.s3_object import S3Object
from framework.resources.schedule_rule import ScheduleRule
from framework.resources.schedule_target import ScheduleTarget
from framework.resources.ses_identity import SesIdentity

# In the order a fresh deploy creates them (ties in dependency order are broken by it).
TABLE: tuple[Kind[Any], ...] = (
    s3_bucket.KIND,
    s3_object.KIND,
    model_version.KIND,
    s3_bucket_policy.KIND,  # after the versions it guards: a destroy removes it first
    lambda_layer.KIND,
    iam_role.KIND,
    firehose_stream.KIND,
    log_group.KIND,
    log_subscription.KIND,
    lambda_function.KIND,
    lambda_version.KIND,
    cloudwatch_alarm.KIND,
    codedeploy_app.KIND,
    codedeploy_deployment_config.KIND,
    codedeploy_deployment_group.KIND,
    lambda_alias.KIND,
    alias_deployment.KIND,  # a plan action: the plan makes one when an alias is to move
    lambda_event_invoke_config.KIND,  # a monitor alias's failed runs: to its notifier
    http_api.KIND,
    api_integration.KIND,
    api_route.KIND,
    api_stage.KIND,
    lambda_permission.KIND,
    schedule_rule.KIND,
    schedule_target.KIND,
    ses_identity.KIND,
)

KINDS: tuple[str, ...] = tuple(k.name for k in TABLE)
BY_NAME: dict[str, Kind[Any]] = {k.name: k for k in TABLE}
if len(BY_NAME) != len(TABLE):
    raise AssertionError("a kind is registered twice")
# The AWS services the kinds' calls use, in table order.
SERVICES: tuple[str, ...] = tuple(dict.fromkeys(s for k in TABLE for s in k.services))


def kind(name: str) -> Kind[Any]:
    """The registered kind ``name``; any other is an ``UnknownKindError``."""
    found = BY_NAME.get(name)
    if found is None:
        raise UnknownKindError(name)
    return found


__all__ = [
    "ABSENT",
    "KINDS",
    "SERVICES",
    "TABLE",
    "AliasDeployment",
    "ApiIntegration",
    "ApiRoute",
    "ApiStage",
    "CloudwatchAlarm",
    "CodedeployApp",
    "CodedeployDeploymentConfig",
    "CodedeployDeploymentGroup",
    "FirehoseStream",
    "HttpApi",
    "IamRole",
    "Kind",
    "LambdaAlias",
    "LambdaEventInvokeConfig",
    "LambdaFunction",
    "LambdaLayer",
    "LambdaPermission",
    "LambdaVersion",
    "LogGroup",
    "LogSubscription",
    "ModelVersion",
    "Props",
    "PropsError",
    "S3Bucket",
    "S3BucketPolicy",
    "S3Object",
    "ScheduleRule",
    "ScheduleTarget",
    "SesIdentity",
    "UnknownKindError",
    "kind",
]
