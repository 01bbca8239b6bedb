"""lambda_function: an endpoint's or a monitor's function (the handler zip from the registry,
one layer, its role, reserved concurrency when declared).

A function is ``Pending`` after create and ``InProgress`` after an update (also when a crashed
deploy left it so): every change waits for it first, and an "update is in progress" conflict
is retried. Reserved concurrency must leave the account 10 unreserved executions: the refusal
becomes an error that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.errors import DeployError
from framework.resources.base import (
    ABSENT,
    CONFLICT,
    Absent,
    CfnResource,
    Deployed,
    Kind,
    LockItem,
    Outputs,
    Props,
    Ref,
    Refused,
    Stack,
    cfn_tags,
    unset_is_none,
)

if TYPE_CHECKING:
    from framework.plan.state import State
    from framework.providers.aws import Context

DEFAULT_ARCHITECTURES = ["x86_64"]


@dataclass(frozen=True, kw_only=True)
class LambdaFunction(Props):
    kind = "lambda_function"

    function_name: str
    runtime: str
    architectures: list[str] | Absent = ABSENT  # x86_64 when not recorded
    layers: list[str | Ref] | Absent = ABSENT  # layer version ARNs (refs until apply)
    handler: str
    role_arn: str
    code: dict[str, str]  # {"bucket", "key", "sha256"} of the handler zip
    memory: int
    timeout: int
    concurrency: int | None  # reserved concurrent executions; None: none reserved
    description: str
    environment: dict[str, str]
    tags: dict[str, str]


def update_in_progress(r: Refused) -> bool:
    """Lambda refuses a change while another is being applied (``ResourceConflictException``
    "The operation cannot be performed at this time. An update is in progress for resource:
    ..." or "The function is currently in the following state: Pending")."""
    message = r.message.lower()
    return r.code in CONFLICT and ("in progress" in message or "pending" in message
                                   or "cannot be performed at this time" in message)


def reserved_too_much(r: Refused) -> bool:
    """PutFunctionConcurrency refused: the account must keep 10 unreserved executions."""
    return (r.code == "InvalidParameterValueException"
            and "unreservedconcurrentexecution" in r.message.lower())


def settled(ctx: Context, name: str, *, after_create: bool = False,
            after_update: bool = False) -> dict[str, Any]:
    """Wait until the function is neither ``Pending`` nor ``InProgress`` (a create or an
    update being applied, ours or a crashed deploy's); returns its configuration. A function
    that failed to become active, or whose update (``after_update``) failed, is an error with
    AWS's reason."""
    lam, got = ctx.client("lambda"), {}

    def ready() -> bool:
        cfg = lam.get_function_configuration(FunctionName=name)
        got.update(cfg)
        state, update = cfg.get("State", "Active"), cfg.get("LastUpdateStatus", "Successful")
        if state == "Failed" and (after_create or after_update):
            raise DeployError(f"function {name} failed to become active: "
                              f"{cfg.get('StateReasonCode', '')} {cfg.get('StateReason', '')}",
                              hint="fix what the reason names and deploy again")
        if update == "Failed" and after_update:
            raise DeployError(
                f"the update of function {name} failed: "
                f"{cfg.get('LastUpdateStatusReasonCode', '')} "
                f"{cfg.get('LastUpdateStatusReason', '')}",
                hint="fix what the reason names and deploy again")
        return bool(state != "Pending" and update != "InProgress")

    ctx.poll(f"function {name} to finish its pending create or update", ready,
             hint="deploy again later: the function is still being changed")
    return got


def change(ctx: Context, name: str, call: Callable[[], Any], role_arn: str | None = None) -> Any:
    """A change to a function: waits for any change in progress, retries "an update is in
    progress" conflicts (and, with ``role_arn``, a role not assumable yet)."""
    settled(ctx, name)

    def fail(r: Refused, seconds: float) -> DeployError:
        return DeployError(f"function {name} stayed busy for {seconds:g} s: {r.message}",
                           hint="deploy again when its current update has finished")

    def attempt() -> Any:
        if role_arn is None:
            return call()
        return ctx.role_retry(call, "Lambda", role_arn)

    return ctx.retry(attempt, update_in_progress, ctx.settle_seconds, fail,
                     between=lambda: settled(ctx, name))


def configuration(p: LambdaFunction) -> dict[str, Any]:
    return {
        "FunctionName": p.function_name, "Role": p.role_arn, "Handler": p.handler,
        "Runtime": p.runtime, "MemorySize": p.memory, "Timeout": p.timeout,
        "Description": p.description, "Layers": list(p.layers or []),
        "Environment": {"Variables": dict(sorted(p.environment.items()))},
    }


def create(ctx: Context, p: LambdaFunction) -> Outputs:
    lam = ctx.client("lambda")
    resp = ctx.attempt(lambda: ctx.role_retry(lambda: lam.create_function(
        **configuration(p), Publish=False, Tags=p.tags,
        Architectures=list(p.architectures or DEFAULT_ARCHITECTURES),
        Code={"S3Bucket": p.code["bucket"], "S3Key": p.code["key"]}),
        "Lambda", p.role_arn), codes=CONFLICT)
    if isinstance(resp, Refused):
        return update(ctx, p, None)
    settled(ctx, p.function_name, after_create=True)
    reserve(ctx, p)
    return {"arn": resp["FunctionArn"], "function_name": p.function_name}


def reserve(ctx: Context, p: LambdaFunction) -> None:
    """Reserve the declared concurrency, or release any earlier reservation."""
    lam, name = ctx.client("lambda"), p.function_name
    if p.concurrency is None:
        change(ctx, name, lambda: lam.delete_function_concurrency(FunctionName=name))
        return
    done = ctx.attempt(lambda: change(ctx, name, lambda: lam.put_function_concurrency(
        FunctionName=name, ReservedConcurrentExecutions=p.concurrency)), when=reserved_too_much)
    if isinstance(done, Refused):
        raise DeployError(
            f"function {name}: AWS refused to reserve {p.concurrency} concurrent "
            f"execution(s): {done.message}",
            hint="the account must keep 10 executions unreserved, and new accounts may have "
                 "only 10 in all: request a higher 'Concurrent executions' quota (Service "
                 "Quotas → AWS Lambda), or lower the endpoints' `concurrency` in mlops.yaml "
                 "(each function reserves it; a monitor reserves 1); `mlops doctor` compares "
                 "the two") from done.error


def update(ctx: Context, p: LambdaFunction, before: Deployed[LambdaFunction] | None) -> Outputs:
    lam, name = ctx.client("lambda"), p.function_name
    if (before is None or before.props.code != p.code
            or before.props.architectures != p.architectures):
        change(ctx, name, lambda: lam.update_function_code(
            FunctionName=name, S3Bucket=p.code["bucket"], S3Key=p.code["key"],
            Architectures=list(p.architectures or DEFAULT_ARCHITECTURES)))
        settled(ctx, name, after_update=True)
    resp = change(ctx, name, lambda: lam.update_function_configuration(**configuration(p)),
                  role_arn=p.role_arn)
    settled(ctx, name, after_update=True)
    lam.tag_resource(Resource=resp["FunctionArn"], Tags=p.tags)
    reserve(ctx, p)
    return {"arn": resp["FunctionArn"], "function_name": name}


def delete(ctx: Context, d: Deployed[LambdaFunction], _destroying: bool) -> None:
    ctx.ignore_missing(lambda: ctx.client("lambda").delete_function(
        FunctionName=d.props.function_name))


def exists(ctx: Context, d: Deployed[LambdaFunction]) -> bool:
    ctx.client("lambda").get_function(FunctionName=d.props.function_name)
    return True


def cloudformation(p: LambdaFunction) -> CfnResource:
    extra: dict[str, Any] = {"Layers": p.layers} if p.layers else {}
    if p.concurrency is not None:
        extra["ReservedConcurrentExecutions"] = p.concurrency
    return {"Type": "AWS::Lambda::Function", "Properties": {
        **extra,
        "FunctionName": p.function_name, "Runtime": p.runtime, "Handler": p.handler,
        "Architectures": p.architectures,
        "Role": p.role_arn, "MemorySize": p.memory, "Timeout": p.timeout,
        "Description": p.description,
        "Code": {"S3Bucket": p.code["bucket"], "S3Key": p.code["key"]},
        "Environment": {"Variables": p.environment}, "Tags": cfn_tags(p.tags)}}


def lock(rid: str, p: LambdaFunction, state: State) -> LockItem | None:
    """An endpoint's function: what it serves, and the Lambda version its alias points at."""
    env = p.environment or {}
    if "MLOPS_ENDPOINT" not in env:
        return None  # a monitor's
    name = rid.split(".", 1)[1]
    alias = state.resources.get(f"alias.{name}")
    return ("endpoints", name, {
        "function": p.function_name,
        "model": f"{env.get('MLOPS_MODEL_NAME')}@{env.get('MLOPS_MODEL_VERSION')}",
        "model_sha256": env.get("MLOPS_MODEL_SHA256"),
        "serving_lambda_version": alias.outputs.get("version") if alias else None,
        "memory": unset_is_none(p.memory), "timeout": unset_is_none(p.timeout),
    })


KIND = Kind(
    props=LambdaFunction, services=("lambda",), replace_on=frozenset({"function_name"}),
    create=create, update=update, delete=delete, exists=exists,
    cloudformation=Stack(cloudformation), lock=lock,
)
