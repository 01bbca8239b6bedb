"""lambda_event_invoke_config: what Lambda does with a failed asynchronous invocation of a
function's alias (a monitor run fired by its schedule): how often it retries, and where it
sends the failure record (``DestinationConfig.OnFailure``: the monitor's failure notifier).

A crashed, timed-out or out-of-memory run writes no report of its own; its failure record
reaches the destination, which writes the ``[FAILURE]`` report, mails it and counts it. The
local AWS does the same (``framework.local.destinations``). moto stores the configuration but
does not honour a qualifier nor update in place, so updates are a delete and a put."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.resources.base import CfnResource, Deployed, Kind, Outputs, Props, Stack

if TYPE_CHECKING:
    from framework.providers.aws import Context


@dataclass(frozen=True, kw_only=True)
class LambdaEventInvokeConfig(Props):
    kind = "lambda_event_invoke_config"

    function_name: str
    qualifier: str  # the alias the schedule invokes
    maximum_retry_attempts: int  # 0-2
    maximum_event_age_s: int  # 60-21600
    on_failure: str  # destination ARN (a function's alias)


def _args(p: LambdaEventInvokeConfig) -> dict[str, Any]:
    return {"FunctionName": p.function_name, "Qualifier": p.qualifier,
            "MaximumRetryAttempts": p.maximum_retry_attempts,
            "MaximumEventAgeInSeconds": p.maximum_event_age_s,
            "DestinationConfig": {"OnFailure": {"Destination": p.on_failure}}}


def create(ctx: Context, p: LambdaEventInvokeConfig) -> Outputs:
    lam = ctx.client("lambda")
    ctx.ignore_missing(lambda: lam.delete_function_event_invoke_config(
        FunctionName=p.function_name, Qualifier=p.qualifier))
    lam.put_function_event_invoke_config(**_args(p))
    return {"on_failure": p.on_failure}


def update(ctx: Context, p: LambdaEventInvokeConfig,
           _before: Deployed[LambdaEventInvokeConfig] | None) -> Outputs:
    return create(ctx, p)


def delete(ctx: Context, d: Deployed[LambdaEventInvokeConfig], _destroying: bool) -> None:
    p = d.props
    ctx.ignore_missing(lambda: ctx.client("lambda").delete_function_event_invoke_config(
        FunctionName=p.function_name, Qualifier=p.qualifier))


def exists(ctx: Context, d: Deployed[LambdaEventInvokeConfig]) -> bool:
    p = d.props
    got = ctx.client("lambda").get_function_event_invoke_config(
        FunctionName=p.function_name, Qualifier=p.qualifier)
    dest = got.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    return bool(dest)


def cloudformation(p: LambdaEventInvokeConfig) -> CfnResource:
    return {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
        "FunctionName": p.function_name, "Qualifier": p.qualifier,
        "MaximumRetryAttempts": p.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": p.maximum_event_age_s,
        "DestinationConfig": {"OnFailure": {"Destination": p.on_failure}}}}


KIND = Kind(
    props=LambdaEventInvokeConfig, services=("lambda",),
    replace_on=frozenset({"function_name", "qualifier"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation),
)
