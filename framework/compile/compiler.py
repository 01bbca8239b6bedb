"""Config → ResourceGraph. Pure and deterministic: identical input, byte-identical output.

Everything that needs the outside world (artifact hashes, the code bundle, the account id)
arrives in ``CompileContext``; the rules below turn config into resources, each built from its
kind's typed properties (``framework.resources``), so a misspelt property fails here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from string import Template
from typing import Any

from framework.apply.audit import RETENTION_TAG
from framework.compile import names
from framework.compile.graph import Resource, ResourceGraph, canonical_json, digest, ref
from framework.config.models import (
    METRIC_GATES,
    CaptureBuffer,
    Config,
    Endpoint,
    Monitor,
    Strategy,
    Throttle,
)
from framework.config.semver import SemVer
from framework.errors import ConfigError, Problem
from framework.resources import (
    ABSENT,
    ApiIntegration,
    ApiRoute,
    ApiStage,
    CodedeployApp,
    CodedeployDeploymentConfig,
    CodedeployDeploymentGroup,
    FirehoseStream,
    HttpApi,
    IamRole,
    LambdaAlias,
    LambdaFunction,
    LambdaLayer,
    LambdaPermission,
    LambdaVersion,
    LogGroup,
    LogSubscription,
    ModelVersion,
    S3Bucket,
    S3BucketPolicy,
    S3Object,
    ScheduleRule,
    ScheduleTarget,
    SesIdentity,
)
from framework.resources.base import Absent
from framework.resources.cloudwatch_alarm import from_request
from framework.resources.lambda_event_invoke_config import LambdaEventInvokeConfig
from framework.rollout.alarms import SIGNALS, endpoint_alarms
from framework.rollout.notice import WRITER as NOTIFIER_WRITER
from framework.rollout.notice import event_pattern
from framework.rollout.session import recipients
from framework.rollout.strategy import (
    ALL_AT_ONCE,
    CODEDEPLOY,
    PREDEFINED_ALL_AT_ONCE,
    Shape,
    Unmappable,
    bake_seconds,
    shape,
)

INFRA = Path(__file__).resolve().parents[2] / "infra"
SERVE_LAYER = "serve"  # the layer need of endpoint functions (framework.layers.NEEDS)
MONITOR_LAYER = "monitor"  # ... and of monitor functions
HANDLER = "handlers.inference.handler"
MONITOR_HANDLER = "handlers.monitor.handler"
MONITOR_FAILURE_HANDLER = "handlers.monitor_failure.handler"
MONITOR_TIMEOUT = 900  # the most a monitor run may take (monitors.<name>.timeout, at most 900)
FAILURE_MEMORY = 512  # the failure notifier writes one report and sends one e-mail
FAILURE_TIMEOUT = 120
LOG_RETENTION_DAYS = 30
# One JSON line per request in the API's access log (API Gateway's $context variables).
ACCESS_LOG_FORMAT = canonical_json({
    "requestId": "$context.requestId", "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp", "routeKey": "$context.routeKey",
    "status": "$context.status", "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
})
FEEDBACK_BUFFER_S = 60  # Firehose delivers a batch of labels at least this often...
FEEDBACK_BUFFER_MB = 5  # ...or when this much has arrived (captures: ``capture.buffer``)
# The handler's capture rows are log lines {"msg":"capture",...} (framework.runtime.capture);
# this subscription filter selects them from the function's log group.
CAPTURE_FILTER_NAME = "mlops-capture"
CAPTURE_FILTER_PATTERN = '{ $.msg = "capture" }'
# ... and its feedback labels {"msg":"feedback",...} (framework.runtime.feedback), the group's
# second subscription filter (CloudWatch Logs allows two per log group).
FEEDBACK_FILTER_NAME = "mlops-feedback"
FEEDBACK_FILTER_PATTERN = '{ $.msg = "feedback" }'
HOOK_HANDLER = "handlers.hooks.handler"
HOOK_TIMEOUT = 900  # seconds, Lambda's most; CodeDeploy waits up to an hour for a verdict
# What makes CodeDeploy roll a deployment back by itself.
ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM")


@dataclass(frozen=True)
class ArtifactInfo:
    """A model file as the registry will store it."""

    sha256: str
    size: int
    source: str  # path of the file to upload
    metadata: str  # canonical JSON of metadata.json


@dataclass(frozen=True)
class ResolvedModel:
    """A registered version an endpoint serves through ``NAME@ALIAS`` or ``NAME@VERSION``,
    resolved (and its artifact verified) against the registry before compile."""

    version: str
    sha256: str


@dataclass(frozen=True)
class CodeBundle:
    """The handler zip, addressed by content."""

    sha256: str
    size: int
    source: str


@dataclass(frozen=True)
class LayerBundle:
    """A built layer zip (``framework.layers``), addressed by content, and what it holds."""

    need: str  # serve or monitor
    runtime: str
    architecture: str
    sha256: str
    size: int
    source: str  # path of the zip to upload
    # name → {"version", "file", "sha256"} of every wheel in it (recorded in mlops.lock)
    packages: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    summary: str = ""  # "onnxruntime 1.20.1, numpy 2.2.0, ..." for the description

    @property
    def unit(self) -> str:
        return names.layer_unit(self.need, self.runtime, self.architecture)


LayerKey = tuple[str, str, str]  # (need, runtime, architecture)


def required_layers(config: Config) -> list[LayerKey]:
    """The layers a config's functions need: each endpoint's serve layer for its runtime and
    architecture, and the monitor layer for the project's."""
    keys: set[LayerKey] = set()
    for name in config.endpoints:
        runtime, arch = config.endpoint_runtime(name)
        keys.add((SERVE_LAYER, runtime, arch.value))
    if config.monitors:
        keys.add((MONITOR_LAYER, config.runtime, config.architecture.value))
    return sorted(keys)


@dataclass(frozen=True)
class CompileContext:
    project: str
    stage: str
    region: str
    account_id: str
    artifacts: Mapping[str, ArtifactInfo]  # by model name
    code: CodeBundle
    resolved: Mapping[str, ResolvedModel] = field(default_factory=dict)  # by "NAME@REF"
    # Every layer ``required_layers`` names, by (need, runtime, architecture): every target's
    # functions import their packages from them (Lambda's Python runtimes have none).
    layers: Mapping[LayerKey, LayerBundle] = field(default_factory=dict)
    # The hold-out data of models whose endpoints' deployments check them before traffic
    # (a pre-traffic hook), by model name.
    holdouts: Mapping[str, ArtifactInfo] = field(default_factory=dict)

    def layer(self, key: LayerKey) -> LayerBundle:
        found = self.layers.get(key)
        if found is None:
            raise ValueError(f"no layer built for {names.layer_unit(*key)}; build the layers "
                             "required_layers(config) names (framework.layers.ensure_layer)")
        return found

    @property
    def bucket(self) -> str:
        return names.registry_bucket(self.project, self.account_id, self.region)

    def tags(self) -> dict[str, str]:
        return {"mlops:project": self.project, "mlops:stage": self.stage}


def _template(name: str, **values: str) -> dict[str, Any]:
    text = (INFRA / "iam" / name).read_text()
    result: dict[str, Any] = json.loads(Template(text).substitute(values))
    return result


def _bucket(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """The registry bucket: versioned, Object Lock enabled (the retention writers put on audit
    records and released versions is its tag), captures expired by lifecycle rules."""
    bucket = config.registry.bucket or ctx.bucket
    tags = {**ctx.tags(), RETENTION_TAG: str(config.registry.lock.retention_days)}
    yield Resource.of("registry", S3Bucket(bucket=bucket, versioning=True, region=ctx.region,
                                           tags=tags, object_lock=True,
                                           lifecycle=_capture_lifecycle(config),
                                           # the monitors' landing rules read its events
                                           event_bridge=True if config.monitors else ABSENT))


# What is derived from an endpoint's captures and keeps its request ids (or its values): the
# captures, their partial profiles (exact values, each row's prediction and request id), the
# feedback labels (request ids) and what either stream could not deliver.
RETAINED = ("capture", "capture-errors", "capture-profiles", "feedback", "feedback-errors")


def _capture_lifecycle(config: Config) -> list[dict[str, Any]]:
    """Per endpoint whose captures expire (``capture.retain_days``), one lifecycle rule for
    each prefix of ``RETAINED``: what was derived from a capture goes when it goes."""
    return [{"id": f"mlops-{root}-{name}", "prefix": f"{root}/{name}/",
             "expire_days": ep.capture.retain_days}
            for name, ep in sorted(config.endpoints.items())
            if ep.capture is not None and ep.capture.retain_days is not None
            for root in RETAINED]


def break_glass_arns(config: Config, ctx: CompileContext) -> list[str]:
    """The break-glass roles' ARNs (a role name is a role of the stage's account)."""
    return sorted(role if role.startswith("arn:") else names.role_arn(ctx.account_id, role)
                  for role in config.registry.lock.break_glass)


def registry_policy(bucket: str, break_glass: list[str]) -> dict[str, Any]:
    """The registry bucket's policy (``infra/iam/registry-bucket-policy.json``): Deny
    statements only; with no break-glass role they apply to every principal."""
    policy = _template("registry-bucket-policy.json", bucket=bucket,
                       break_glass=json.dumps(break_glass))
    for statement in policy["Statement"]:
        condition = statement.get("Condition", {})
        if not condition.get("ArnNotLike", {}).get("aws:PrincipalArn", True):
            del condition["ArnNotLike"]
        if "Condition" in statement and not condition:
            del statement["Condition"]
    return policy


def _bucket_policy(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """After every registered version it guards (so a destroy removes it before them)."""
    bucket = config.registry.bucket or ctx.bucket
    models = [f"model.{name}@{model.version}" for name, model in config.models.items()]
    yield Resource.of("registry-policy", S3BucketPolicy(
        bucket=bucket, policy=registry_policy(bucket, break_glass_arns(config, ctx)),
    ), ("registry", *models))


def _model_objects(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """One registered version per declared model (artifact, reference profile, then
    metadata.json as the commit: see ``framework.registry``), plus the handler zip."""
    bucket = config.registry.bucket or ctx.bucket
    for name, model in config.models.items():
        art = ctx.artifacts[name]
        yield Resource.of(f"model.{name}@{model.version}", ModelVersion(
            bucket=bucket, name=name, version=model.version,
            prefix=names.model_prefix(name, model.version), sha256=art.sha256,
            size=art.size, source=art.source, reference=model.reference,
            metadata=json.loads(art.metadata),
            gates=dict(sorted(model.gates.items())),  # checked, not deployed: see the plan
        ), ("registry",))
    yield Resource.of("code", S3Object(
        bucket=bucket, key=names.code_key(ctx.code.sha256), sha256=ctx.code.sha256,
        size=ctx.code.size, source=ctx.code.source, content_type="application/zip",
        immutable=True, retain=True,
    ), ("registry",))


def digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _served_version(config: Config, ctx: CompileContext, ep_name: str,
                    ep: Endpoint) -> tuple[str, str, bool]:
    """(version, sha256, declared): the declared version, or one resolved in the registry."""
    model = config.models[ep.model_name]
    pinned = ep.model_ref
    if pinned is None or pinned == model.version:
        return model.version, ctx.artifacts[ep.model_name].sha256, True
    resolved = ctx.resolved.get(ep.model)
    if resolved is None:
        what = (f"version {pinned} of model '{ep.model_name}' was not resolved in the registry"
                if _is_semver(pinned) else f"alias '{pinned}' was not resolved in the registry")
        raise ConfigError([Problem(
            where=f"endpoints.{ep_name}.model", what=what,
            hint=f"register and promote it (`mlops models promote {ep.model_name}@VERSION "
                 f"--alias ALIAS`), or serve '{ep.model_name}' (declared version "
                 f"{model.version})",
        )])
    if resolved.version == model.version:
        return model.version, ctx.artifacts[ep.model_name].sha256, True
    return resolved.version, resolved.sha256, False


def _is_semver(text: str) -> bool:
    try:
        SemVer.parse(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class FunctionUnit:
    """One Lambda function with its role, log group, published version and ``live`` alias."""

    unit: str  # logical suffix: the endpoint's name, or mon-<monitor>
    layer: LayerKey  # the one layer the function imports its packages from
    policy: dict[str, Any]
    handler: str
    memory: int
    timeout: int
    concurrency: int | None  # reserved concurrency; None: none reserved
    description: str
    environment: dict[str, str]
    tags: dict[str, str]
    depends_on: tuple[str, ...] = ()
    endpoint: str | Absent = ABSENT  # an endpoint's function: its alias names the endpoint...
    rollout: dict[str, Any] | Absent = ABSENT  # ...and how a new version reaches it
    # ...and the CodeDeploy deployment group that moves the alias (and what the alias waits
    # for: the group, the hook)
    deployment_group: dict[str, str] | Absent = ABSENT
    alias_depends_on: tuple[str, ...] = ()
    versioned: bool = True  # a published version and the live alias (a hook has neither)


def _function_unit(ctx: CompileContext, bucket: str, u: FunctionUnit) -> Iterator[Resource]:
    fn = names.function_name(ctx.project, ctx.stage, u.unit)
    role = names.role_name(ctx.project, ctx.stage, u.unit)
    yield Resource.of(f"role.{u.unit}", IamRole(
        role_name=role,
        trust_policy=_template("lambda-trust.json"),
        policy_name=names.policy_name(ctx.project, ctx.stage, u.unit),
        policy=u.policy,
        tags=ctx.tags(),
    ))
    yield Resource.of(f"logs.{u.unit}", LogGroup(
        name=names.log_group(fn), retention_days=LOG_RETENTION_DAYS, tags=ctx.tags()))
    layer = ctx.layer(u.layer)
    function = LambdaFunction(
        function_name=fn,
        runtime=layer.runtime,
        architectures=[layer.architecture],
        layers=[ref(f"layer.{layer.unit}", "layer_version_arn")],
        handler=u.handler,
        role_arn=names.role_arn(ctx.account_id, role),
        code={"bucket": bucket, "key": names.code_key(ctx.code.sha256),
              "sha256": ctx.code.sha256},
        memory=u.memory,
        timeout=u.timeout,
        concurrency=u.concurrency,
        description=u.description,
        environment=u.environment,
        tags={**ctx.tags(), "mlops:registry": bucket, **u.tags},
    )
    deps = [f"role.{u.unit}", f"logs.{u.unit}", "code", *u.depends_on]  # + the layer's ref
    yield Resource.of(f"function.{u.unit}", function, deps)
    if not u.versioned:
        return
    # The layer's bytes count too: a new layer version must reach the live alias.
    yield Resource.of(f"version.{u.unit}", LambdaVersion(
        function_name=fn,
        function_digest=digest({**function.to_props(), "layer_sha256": layer.sha256}),
    ), (f"function.{u.unit}",))
    yield Resource.of(f"alias.{u.unit}", LambdaAlias(
        function_name=fn, alias=names.ALIAS,
        function_version=ref(f"version.{u.unit}", "version"), endpoint=u.endpoint,
        rollout=u.rollout, deployment_group=u.deployment_group,
    ), u.alias_depends_on)


@dataclass(frozen=True)
class LogStream:
    """One of an endpoint's two log-to-bucket paths: the lines its function logs with
    ``"msg": root`` (captured rows, feedback labels), selected by a subscription filter of its
    log group, buffered by a Firehose stream into gzip JSON lines objects under
    ``{root}/{endpoint}/dt=YYYY-MM-DD/``."""

    root: str  # "capture" | "feedback": the lines' msg, and the bucket prefix
    stream: str  # the Firehose stream's name
    suffix: str  # of the resource ids: "" for captures (as first deployed), ".feedback"
    filter_name: str
    filter_pattern: str
    buffer_mb: int  # Firehose's buffering hints
    buffer_seconds: int


def _log_streams(ctx: CompileContext, ep_name: str, buffer: CaptureBuffer,
                 ) -> tuple[LogStream, LogStream]:
    return (LogStream("capture", names.capture_stream(ctx.project, ctx.stage, ep_name), "",
                      CAPTURE_FILTER_NAME, CAPTURE_FILTER_PATTERN, buffer.size_mb,
                      buffer.interval_seconds),
            LogStream("feedback", names.feedback_stream(ctx.project, ctx.stage, ep_name),
                      ".feedback", FEEDBACK_FILTER_NAME, FEEDBACK_FILTER_PATTERN,
                      FEEDBACK_BUFFER_MB, FEEDBACK_BUFFER_S))


def _log_stream(ctx: CompileContext, bucket: str, ep_name: str, s: LogStream,
                log_group: str) -> Iterator[Resource]:
    """The path of ``s``: a subscription filter of the function's log group, delivered by
    CloudWatch Logs (through a role that may put records on this stream only) to a Firehose
    stream that unwraps them (decompression, message extraction) and writes them (through a
    role that may write ``{root}/{endpoint}/`` and ``{root}-errors/{endpoint}/`` only) —
    the layout the monitors read."""
    unit = f"{ep_name}-{s.root}"
    role = names.role_name(ctx.project, ctx.stage, unit)
    yield Resource.of(f"role.{unit}", IamRole(
        role_name=role,
        trust_policy=_template("firehose-trust.json"),
        policy_name=names.policy_name(ctx.project, ctx.stage, unit),
        policy=_template("capture-stream.json", bucket=bucket, endpoint=ep_name, root=s.root),
        tags=ctx.tags(),
    ))
    yield Resource.of(f"stream.{ep_name}{s.suffix}", FirehoseStream(
        stream_name=s.stream, bucket=bucket, role_arn=names.role_arn(ctx.account_id, role),
        prefix=f"{s.root}/{ep_name}/dt=!{{timestamp:yyyy-MM-dd}}/",
        error_prefix=f"{s.root}-errors/{ep_name}/!{{firehose:error-output-type}}/",
        buffer_seconds=s.buffer_seconds, buffer_mb=s.buffer_mb,
        compression="GZIP", extension=".jsonl.gz", source="cloudwatch_logs",
        tags=ctx.tags(),
    ), (f"role.{unit}", "registry"))
    logs_unit = f"{ep_name}-{s.root}-logs"
    logs_role = names.role_name(ctx.project, ctx.stage, logs_unit)
    stream_arn = names.stream_arn(ctx.region, ctx.account_id, s.stream)
    yield Resource.of(f"role.{logs_unit}", IamRole(
        role_name=logs_role,
        trust_policy=_template("logs-trust.json", region=ctx.region, account=ctx.account_id),
        policy_name=names.policy_name(ctx.project, ctx.stage, logs_unit),
        policy=_template("capture-subscription.json", stream_arn=stream_arn),
        tags=ctx.tags(),
    ))
    yield Resource.of(f"subscription.{ep_name}{s.suffix}", LogSubscription(
        log_group=log_group, filter_name=s.filter_name,
        filter_pattern=s.filter_pattern, destination_arn=stream_arn,
        role_arn=names.role_arn(ctx.account_id, logs_role),
    ), (f"logs.{ep_name}", f"stream.{ep_name}{s.suffix}", f"role.{logs_unit}"))


def _endpoint(config: Config, ctx: CompileContext, ep_name: str, ep: Endpoint,
              ) -> Iterator[Resource]:
    bucket = config.registry.bucket or ctx.bucket
    fn = names.function_name(ctx.project, ctx.stage, ep_name)
    version, model_sha256, declared = _served_version(config, ctx, ep_name, ep)
    model_name = ep.model_name
    policy = _shadow_policy(_template(
        "inference-function.json", bucket=bucket, model=model_name, endpoint=ep_name,
        region=ctx.region, account=ctx.account_id, log_group=names.log_group(fn)), ctx, fn, ep)
    capturing = bool(ep.capture and ep.capture.sample_rate > 0)
    if capturing and ep.capture:  # captured predictions, and the feedback labels joined to them
        for stream in _log_streams(ctx, ep_name, ep.capture.buffer):
            yield from _log_stream(ctx, bucket, ep_name, stream, names.log_group(fn))
    runtime, arch = config.endpoint_runtime(ep_name)
    group, group_deps = _managed_alias(config, ctx, ep_name, ep)
    yield from _function_unit(ctx, bucket, FunctionUnit(
        unit=ep_name,
        layer=(SERVE_LAYER, runtime, arch.value),
        policy=policy,
        handler=HANDLER, memory=ep.memory, timeout=ep.timeout, concurrency=ep.concurrency,
        description=ep.description or f"{ctx.project} endpoint {ep_name}",
        environment={
            "MLOPS_ENDPOINT": ep_name,
            "MLOPS_MODEL_NAME": model_name,
            "MLOPS_MODEL_SHA256": model_sha256,
            "MLOPS_MODEL_VERSION": version,
            "MLOPS_REGISTRY_BUCKET": bucket,
            "MLOPS_ROUTE": ep.route,
            "MLOPS_AUTH": ep.auth.value,
            "MLOPS_MAX_BATCH_ROWS": str(ep.max_batch_rows),
            "MLOPS_CAPTURE_SAMPLE_RATE": f"{ep.capture.sample_rate:g}" if ep.capture else "0",
            "MLOPS_CAPTURE_SINK": "log" if capturing else "off",
            **({"MLOPS_CAPTURE_REDACT": ",".join(ep.capture.redact)}
               if capturing and ep.capture and ep.capture.redact else {}),
            **_shadow_environment(ctx, fn, ep),
        },
        tags={"mlops:endpoint": ep_name},
        depends_on=(f"model.{model_name}@{version}",) if declared else (),
        endpoint=ep_name, rollout=ep.rollout.model_dump(
            mode="json", exclude=None if ep.rollout.strategy is Strategy.shadow
            else {"shadow_sample_rate"}),  # only shadow rollouts use it
        deployment_group=group, alias_depends_on=group_deps,
    ))
    alias_arn = names.function_arn(ctx.region, ctx.account_id, fn, names.ALIAS)
    yield Resource.of(f"integration.{ep_name}", ApiIntegration(
        api_id=ref("api", "api_id"), integration_uri=alias_arn,
        payload_format_version="2.0", timeout_ms=min(ep.timeout * 1000, 30000),
    ), (f"alias.{ep_name}",))
    target = ref(f"integration.{ep_name}", "integration_id", "integrations/{}")
    yield Resource.of(f"route.{ep_name}", ApiRoute(
        api_id=ref("api", "api_id"), route_key=ep.route, target=target,
        authorization=ep.auth.value))
    # Feedback, OpenAPI document and Open Inference Protocol v2: same function, same auth.
    for suffix, route_key in names.endpoint_routes(ep.route, ep_name):
        yield Resource.of(f"route.{ep_name}.{suffix}", ApiRoute(
            api_id=ref("api", "api_id"), route_key=route_key, target=target,
            authorization=ep.auth.value))
    yield Resource.of(f"permission.{ep_name}", LambdaPermission(
        function_name=fn, qualifier=names.ALIAS, statement_id="http-api-invoke",
        principal="apigateway.amazonaws.com",
        source_arn=ref("api", "api_id",
                       f"arn:aws:execute-api:{ctx.region}:{ctx.account_id}:{{}}/*/*"),
    ), (f"alias.{ep_name}",))


def _shadow_environment(ctx: CompileContext, fn: str, ep: Endpoint) -> dict[str, str]:
    """A shadow-rolled endpoint's function sends a sample of its answered requests to its
    ``shadow`` alias (``framework.runtime.shadow``): where, and how many."""
    if ep.rollout.strategy is not Strategy.shadow:
        return {}
    return {"MLOPS_SHADOW_TARGET": names.function_arn(ctx.region, ctx.account_id, fn,
                                                      names.SHADOW_ALIAS),
            "MLOPS_SHADOW_SAMPLE_RATE": f"{ep.rollout.shadow_sample_rate:g}"}


def _shadow_policy(policy: dict[str, Any], ctx: CompileContext, fn: str,
                   ep: Endpoint) -> dict[str, Any]:
    """The serving role may invoke its own function's ``shadow`` alias (the copies) and read
    where it points (no copies while it serves the same version), nothing else."""
    if ep.rollout.strategy is not Strategy.shadow:
        return policy
    function = names.function_arn(ctx.region, ctx.account_id, fn)
    alias = names.function_arn(ctx.region, ctx.account_id, fn, names.SHADOW_ALIAS)
    return {**policy, "Statement": [*policy["Statement"], {
        "Sid": "SendShadowCopies", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
        "Resource": [alias]}, {
        "Sid": "ReadShadowAlias", "Effect": "Allow", "Action": ["lambda:GetAlias"],
        "Resource": [function, alias]}]}


# -- deployments: CodeDeploy moves the aliases of endpoints rolled out step by step ----------


def _managed(config: Config) -> list[tuple[str, Endpoint]]:
    """Endpoints whose new versions reach the traffic through a CodeDeploy deployment."""
    return sorted((name, ep) for name, ep in config.endpoints.items()
                  if ep.rollout.strategy in CODEDEPLOY)


def _held_out(config: Config, ep: Endpoint) -> bool:
    """The endpoint's deployments check the new version before traffic: its model declares
    hold-out data (its gates are run on the new version)."""
    return config.models[ep.model_name].holdout is not None


def _hooked(config: Config, ep: Endpoint) -> bool:
    """The endpoint's deployments run its hook function: before traffic (hold-out data, a
    shadow step), or after it (``watch.hold_without_traffic``), or both."""
    return (_held_out(config, ep) or ep.rollout.strategy is Strategy.shadow
            or ep.rollout.watch.hold_without_traffic)


def _managed_alias(config: Config, ctx: CompileContext, name: str, ep: Endpoint,
                   ) -> tuple[dict[str, str] | Absent, tuple[str, ...]]:
    """The alias's deployment group (and its hook), and what the alias waits for."""
    if ep.rollout.strategy not in CODEDEPLOY:
        return ABSENT, ()
    group = {"application": names.codedeploy_app(ctx.project, ctx.stage),
             "group": names.deployment_group(ctx.project, ctx.stage, name)}
    deps = [f"deploy-group.{name}"]
    if _hooked(config, ep):
        unit = names.hook_unit(name)
        hook = names.function_name(ctx.project, ctx.stage, unit)
        if _held_out(config, ep) or ep.rollout.strategy is Strategy.shadow:
            group["before_allow_traffic"] = hook
        if ep.rollout.watch.hold_without_traffic:
            group["after_allow_traffic"] = hook
        deps.append(f"function.{unit}")
    return group, tuple(deps)


def _shapes(config: Config) -> dict[str, Shape]:
    """Each managed endpoint's traffic shape; steps CodeDeploy cannot run are refused."""
    shapes: dict[str, Shape] = {}
    problems: list[Problem] = []
    for name, ep in _managed(config):
        if ep.rollout.watch.drift and not _held_out(config, ep):
            problems.append(Problem(
                where=f"endpoints.{name}.rollout.watch.drift",
                what=f"the candidate's answers are compared with the serving version's by the "
                     f"pre-traffic check, on the hold-out rows of its model, and model "
                     f"'{ep.model_name}' declares no holdout",
                hint=f"declare models.{ep.model_name}.holdout ({{path, label}}), or remove "
                     "drift from the watch"))
        got = shape(ep.rollout)
        if isinstance(got, Unmappable):
            problems.append(Problem(where=f"endpoints.{name}.rollout.steps", what=got.what,
                                    hint=got.hint))
        else:
            shapes[name] = got
    if problems:
        raise ConfigError(problems, source="compile")
    return shapes


def config_id(sh: Shape) -> str:
    return f"deploy-config.{sh.slug()}"


def _deployments(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """The stage's CodeDeploy application and service role, a deployment config per traffic
    shape, and per managed endpoint its alarms (one per watched signal, on the model version
    it serves), its deployment group and its pre-traffic hook."""
    managed = _managed(config)
    if not managed:
        return
    shapes = _shapes(config)
    app = names.codedeploy_app(ctx.project, ctx.stage)
    yield Resource.of("deploy-app", CodedeployApp(application_name=app,
                                                  compute_platform="Lambda", tags=ctx.tags()))
    role = names.role_name(ctx.project, ctx.stage, "codedeploy")
    yield Resource.of("role.codedeploy", IamRole(
        role_name=role, trust_policy=_template("codedeploy-trust.json"),
        policy_name=names.policy_name(ctx.project, ctx.stage, "codedeploy"),
        policy=_template("codedeploy-service.json", region=ctx.region, account=ctx.account_id,
                         prefix=f"{ctx.project}-{ctx.stage}"),
        tags=ctx.tags()))
    for sh in sorted({s for s in shapes.values() if s.routing != ALL_AT_ONCE},
                     key=lambda s: s.slug()):
        yield Resource.of(config_id(sh), CodedeployDeploymentConfig(
            config_name=names.deployment_config(ctx.project, ctx.stage, sh.slug()),
            compute_platform="Lambda", routing=sh.routing, percentage=sh.percentage,
            interval_s=sh.interval_s))
    held_out: set[str] = set()
    for name, ep in managed:
        fn = names.function_name(ctx.project, ctx.stage, name)
        version, _sha, _declared = _served_version(config, ctx, name, ep)
        alarms = []
        for request in endpoint_alarms(fn, name, ep.rollout, alias=names.ALIAS,
                                       model_version=version):
            signal = next(s for s in SIGNALS if request["AlarmName"].endswith(s))
            alarm = from_request(request)
            alarms.append((f"alarm.{name}.{signal}", alarm.alarm_name))
            yield Resource.of(alarms[-1][0], replace(alarm, tags={**alarm.tags, **ctx.tags()}))
        sh = shapes[name]
        deps = ["deploy-app", "role.codedeploy", *(rid for rid, _ in alarms)]
        if sh.routing != ALL_AT_ONCE:
            deps.append(config_id(sh))
        yield Resource.of(f"deploy-group.{name}", CodedeployDeploymentGroup(
            application_name=app, group_name=names.deployment_group(ctx.project, ctx.stage, name),
            endpoint=name, service_role_arn=names.role_arn(ctx.account_id, role),
            config_name=(names.deployment_config(ctx.project, ctx.stage, sh.slug())
                         if sh.routing != ALL_AT_ONCE else PREDEFINED_ALL_AT_ONCE),
            alarms=[alarm_name for _, alarm_name in alarms],
            rollback_events=list(ROLLBACK_EVENTS),
            tags={**ctx.tags(), "mlops:endpoint": name}), deps)
        if _hooked(config, ep):
            yield from _hook(config, ctx, name, ep, held_out)
    yield from _rollback_notifier(config, ctx, shapes)


NOTIFIER_UNIT = "rollback-mail"
NOTIFIER_HANDLER = "handlers.rollback.handler"
NOTIFIER_RULE = "deploy-events"


def _rollback_notifier(config: Config, ctx: CompileContext, shapes: Mapping[str, Shape],
                       ) -> Iterator[Resource]:
    """The stage's rollback notifier: an EventBridge rule on CodeDeploy's state-change events
    of the stage's application (FAILURE, STOP) whose target, a small function, e-mails the
    [ROLLBACK] message to the recipients of the endpoint's monitors when CodeDeploy rolled the
    deployment back (``framework.rollout.notice``) — on AWS's own event, whatever became of
    the machine that started the deployment. None when no rolled-out endpoint has
    recipients."""
    app = names.codedeploy_app(ctx.project, ctx.stage)
    groups: dict[str, dict[str, Any]] = {}
    for name, ep in _managed(config):
        sender, to = recipients(config.monitors, name)
        if not to:
            continue
        hooked = _held_out(config, ep) or ep.rollout.strategy is Strategy.shadow
        hook_fn = names.function_name(ctx.project, ctx.stage, names.hook_unit(name))
        groups[names.deployment_group(ctx.project, ctx.stage, name)] = {
            "endpoint": name, "strategy": ep.rollout.strategy.value,
            "steps": list(shapes[name].steps), "sender": sender, "to": to,
            "hook_log_group": names.log_group(hook_fn) if hooked else None}
    if not groups:
        return
    bucket = config.registry.bucket or ctx.bucket
    fn = names.function_name(ctx.project, ctx.stage, NOTIFIER_UNIT)
    yield from _function_unit(ctx, bucket, FunctionUnit(
        unit=NOTIFIER_UNIT, layer=(MONITOR_LAYER, config.runtime, config.architecture.value),
        policy=_template("rollback-notifier.json", region=ctx.region, account=ctx.account_id,
                         application=app, prefix=f"{ctx.project}-{ctx.stage}", bucket=bucket,
                         writer=NOTIFIER_WRITER, log_group=names.log_group(fn)),
        handler=NOTIFIER_HANDLER, memory=FAILURE_MEMORY, timeout=FAILURE_TIMEOUT,
        concurrency=None,
        description=f"{ctx.project} {ctx.stage}: e-mails the rollbacks of its deployments",
        environment={"MLOPS_ROLLBACK": canonical_json(
            {"project": ctx.project, "stage": ctx.stage, "groups": groups}),
            "MLOPS_REGISTRY_BUCKET": bucket},
        tags={"mlops:notifier": "rollback"},
    ))
    yield from _rule_invokes(
        ctx, f"rule.{NOTIFIER_RULE}", ScheduleRule(
            rule_name=names.schedule_rule(ctx.project, ctx.stage, NOTIFIER_RULE),
            event_pattern=event_pattern(app), state="ENABLED",
            description=f"{ctx.project} {ctx.stage}: CodeDeploy deployments that failed or "
                        "stopped",
            tags=ctx.tags(),
        ), ("deploy-app",), NOTIFIER_UNIT, fn, permission=f"permission.{NOTIFIER_UNIT}",
        statement="events-invoke", target=f"target.{NOTIFIER_RULE}", target_id="rollback-mail")


def _rule_invokes(ctx: CompileContext, rid: str, rule: ScheduleRule, deps: tuple[str, ...],
                  unit: str, fn: str, *, permission: str, statement: str, target: str,
                  target_id: str, transformer: dict[str, Any] | Absent = ABSENT,
                  ) -> Iterator[Resource]:
    """An EventBridge rule whose target is the ``live`` alias of function ``fn`` (item
    ``unit``), with the permission it needs to invoke it: the rule's own ARN as the source."""
    yield Resource.of(rid, rule, deps)
    yield Resource.of(permission, LambdaPermission(
        function_name=fn, qualifier=names.ALIAS, statement_id=statement,
        principal="events.amazonaws.com", source_arn=ref(rid, "arn"),
    ), (f"alias.{unit}",))
    yield Resource.of(target, ScheduleTarget(
        rule_name=rule.rule_name, target_id=target_id,
        arn=names.function_arn(ctx.region, ctx.account_id, fn, names.ALIAS),
        input_transformer=transformer,
    ), (rid, f"alias.{unit}", permission))


def hook_spec(config: Config, ctx: CompileContext, name: str, ep: Endpoint,
              holdout_key: str | None) -> dict[str, Any]:
    """The plain-JSON settings an endpoint's hook function runs with (``MLOPS_HOOK``)."""
    model = config.models[ep.model_name]
    holdout = None if model.holdout is None or holdout_key is None else {
        "key": holdout_key, "label": model.holdout.label, "positive": model.holdout.positive}
    watch = ep.rollout.watch
    gates = {gate: {"text": str(th), "op": th.op, "relative": th.relative, "value": th.value,
                    "offset": th.offset, "factor": th.factor}
             for gate, th in sorted(model.gates.items()) if gate in METRIC_GATES}
    return {
        "endpoint": name, "function": names.function_name(ctx.project, ctx.stage, name),
        "model": ep.model_name, "task": model.task.value,
        "bucket": config.registry.bucket or ctx.bucket,
        "features": [f.name for f in model.features],
        "holdout": holdout, "gates": gates, "max_rows": ep.max_batch_rows,
        "drift": watch.drift,
        "hold": {"min_requests": watch.min_requests} if watch.hold_without_traffic else None,
        "shadow": {"bake_s": bake_seconds(ep.rollout), "agreement": watch.shadow_agreement,
                   "min_requests": watch.min_requests, "hold": watch.hold_without_traffic}
        if ep.rollout.strategy is Strategy.shadow else None,
    }


def _hook(config: Config, ctx: CompileContext, name: str, ep: Endpoint,
          held_out: set[str]) -> Iterator[Resource]:
    """The endpoint's hook function: before traffic, it runs the new version's model (as that
    version's configuration names it) on the model's hold-out data and checks its metric gates
    there; after traffic, it holds the deployment until it had the requests to be judged; and
    tells CodeDeploy (see ``framework.rollout.pretraffic``)."""
    bucket = config.registry.bucket or ctx.bucket
    model_name = ep.model_name
    key = None
    deps: tuple[str, ...] = ()
    if _held_out(config, ep):
        holdout = ctx.holdouts.get(model_name)
        if holdout is None:
            raise ValueError(f"no hold-out info for model {model_name}; describe the hold-out "
                             "data of the config's models (CompileContext.holdouts)")
        key = names.holdout_key(model_name, holdout.sha256)
        deps = (f"holdout.{model_name}",)
        if model_name not in held_out:
            held_out.add(model_name)
            yield Resource.of(f"holdout.{model_name}", S3Object(
                bucket=bucket, key=key, sha256=holdout.sha256, size=holdout.size,
                source=holdout.source, content_type="text/csv", immutable=True, retain=True,
            ), ("registry",))
    unit = names.hook_unit(name)
    fn = names.function_name(ctx.project, ctx.stage, unit)
    runtime, arch = config.endpoint_runtime(name)
    spec = hook_spec(config, ctx, name, ep, key)
    yield from _function_unit(ctx, bucket, FunctionUnit(
        unit=unit, layer=(SERVE_LAYER, runtime, arch.value),
        policy=_template("pretraffic-hook.json", bucket=bucket, model=model_name,
                         region=ctx.region, account=ctx.account_id,
                         endpoint_function=spec["function"],
                         application=names.codedeploy_app(ctx.project, ctx.stage),
                         group=names.deployment_group(ctx.project, ctx.stage, name),
                         log_group=names.log_group(fn)),
        handler=HOOK_HANDLER, memory=ep.memory, timeout=HOOK_TIMEOUT, concurrency=None,
        description=f"{ctx.project} endpoint {name}: checks a new version's deployments",
        environment={"MLOPS_HOOK": canonical_json(spec), "MLOPS_REGISTRY_BUCKET": bucket},
        tags={"mlops:endpoint": name, "mlops:hook": "deployment"},
        depends_on=deps, versioned=False,
    ))


def _layers(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """Each layer a function needs: its zip in the registry, then the published version."""
    bucket = config.registry.bucket or ctx.bucket
    for need in required_layers(config):
        layer = ctx.layer(need)
        key = names.layer_key(layer.sha256)
        yield Resource.of(f"layer-zip.{layer.unit}", S3Object(
            bucket=bucket, key=key, sha256=layer.sha256, size=layer.size,
            source=layer.source, content_type="application/zip", immutable=True, retain=True,
        ), ("registry",))
        description = f"mlops {layer.need} layer: {layer.summary}" if layer.summary else (
            f"mlops {layer.need} layer")
        yield Resource.of(f"layer.{layer.unit}", LambdaLayer(
            layer_name=names.layer_name(ctx.project, ctx.stage, layer.unit),
            bucket=bucket, key=key, sha256=layer.sha256,
            need=layer.need, runtimes=[layer.runtime],
            architectures=[layer.architecture], description=description[:256],
            packages={name: dict(p) for name, p in sorted(layer.packages.items())},
        ), (f"layer-zip.{layer.unit}",))


def _api(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    if config.endpoints:
        yield Resource.of("api", HttpApi(name=names.api_name(ctx.project, ctx.stage),
                                         protocol="HTTP", stage="$default", tags=ctx.tags()))


def _throttle(throttle: Throttle | None) -> dict[str, Any] | None:
    return None if throttle is None else {"rate": throttle.rate, "burst": throttle.burst}


def _api_stage(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """The API's $default stage: access log (to a log group of its own) and throttling, the
    API's default and each throttled endpoint's routes; after the routes it names."""
    if not config.endpoints:
        return
    api = config.api
    deps: list[str] = []  # the API itself: through the api_id ref
    access_log = None
    if api.access_log:
        group = names.api_access_log(names.api_name(ctx.project, ctx.stage))
        yield Resource.of("logs.api", LogGroup(name=group, retention_days=LOG_RETENTION_DAYS,
                                               tags=ctx.tags()))
        deps.append("logs.api")
        access_log = {"destination_arn": names.log_group_arn(ctx.region, ctx.account_id, group),
                      "format": ACCESS_LOG_FORMAT}
    routes: dict[str, Any] = {}
    for name, ep in sorted(config.endpoints.items()):
        if ep.throttle is None:
            continue
        keys = [ep.route, *(key for _suffix, key in names.endpoint_routes(ep.route, name))]
        routes.update({key: _throttle(ep.throttle) for key in keys})
        deps += [f"route.{name}", *(f"route.{name}.{suffix}" for suffix, _key
                                    in names.endpoint_routes(ep.route, name))]
    yield Resource.of("stage.api", ApiStage(
        api_id=ref("api", "api_id"), stage="$default", auto_deploy=True,
        access_log=access_log, throttle=_throttle(api.throttle),
        route_throttles=dict(sorted(routes.items())),
    ), deps)


def monitor_spec(config: Config, ctx: CompileContext, name: str, mon: Monitor,
                 version: str | None = None) -> dict[str, Any]:
    """The plain-JSON settings the monitor function runs with (``MLOPS_MONITOR``)."""
    from framework.monitoring.spec import window_seconds

    ep = config.endpoints[mon.endpoint]
    model = config.models[ep.model_name]
    return {
        "name": name, "project": ctx.project, "stage": ctx.stage, "endpoint": mon.endpoint,
        "model": ep.model_name, "version": version or model.version, "task": model.task.value,
        "bucket": config.registry.bucket or ctx.bucket,
        "window_seconds": window_seconds(mon.window, mon.schedule),
        "drift": mon.drift.model_dump(mode="json", exclude_defaults=True),
        "performance": None if mon.performance is None
        else mon.performance.model_dump(mode="json"),
        "alarms": dict(mon.alarms), "charts": mon.charts.model_dump(mode="json"),
        "notify": mon.notify.model_dump(mode="json", exclude_defaults=False),
        "on_drift": [a.value for a in mon.on_drift],
        "endpoint_function": names.function_name(ctx.project, ctx.stage, mon.endpoint),
        "alias": names.ALIAS,
        **({"redacted": list(ep.capture.redact)} if ep.capture and ep.capture.redact else {}),
        "fan_out": mon.fan_out.model_dump(mode="json"),
    }


def _monitor_policy(ctx: CompileContext, bucket: str, ep: Endpoint, mon: Monitor, name: str,
                    fn: str, spec: Mapping[str, Any],
                    notifier: str | None) -> dict[str, Any]:
    """The monitor policy template for function ``fn``, with the partial profiles beside the
    endpoint's captures and (for the monitor itself) its failure notifier to invoke: Lambda
    sends a failed asynchronous run there with the monitor's own role."""
    policy = _template("monitor-function.json", bucket=bucket, model=ep.model_name,
                       endpoint=mon.endpoint, monitor=name, region=ctx.region,
                       account=ctx.account_id, log_group=names.log_group(fn),
                       project=ctx.project, endpoint_function=spec["endpoint_function"])
    profiles = f"capture-profiles/{mon.endpoint}/*"
    policy["Statement"] += [
        {"Sid": "PartialProfiles", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{profiles}"]},
        {"Sid": "ListPartialProfiles", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{bucket}"],
         "Condition": {"StringLike": {"s3:prefix": [profiles]}}},
    ]
    if notifier is not None:
        policy["Statement"].append(
            {"Sid": "SendFailedRunsToTheNotifier", "Effect": "Allow",
             "Action": ["lambda:InvokeFunction"],
             "Resource": [names.function_arn(ctx.region, ctx.account_id, notifier),
                          names.function_arn(ctx.region, ctx.account_id, notifier, names.ALIAS)]})
        policy["Statement"].append(  # fan-out: the run hands objects to invocations of itself
            {"Sid": "ProfileObjectsInParallel", "Effect": "Allow",
             "Action": ["lambda:InvokeFunction"],
             "Resource": [names.function_arn(ctx.region, ctx.account_id, fn),
                          names.function_arn(ctx.region, ctx.account_id, fn, names.ALIAS)]})
    return policy


def _monitor(config: Config, ctx: CompileContext, name: str, mon: Monitor,
             ) -> Iterator[Resource]:
    bucket = config.registry.bucket or ctx.bucket
    unit = names.monitor_unit(name)
    fn = names.function_name(ctx.project, ctx.stage, unit)
    failed = f"{unit}-failed"  # the failure notifier's unit
    notifier = names.function_name(ctx.project, ctx.stage, failed)
    ep = config.endpoints[mon.endpoint]
    version, _sha, _declared = _served_version(config, ctx, mon.endpoint, ep)
    spec = monitor_spec(config, ctx, name, mon, version)
    yield from _function_unit(ctx, bucket, FunctionUnit(
        unit=unit,
        layer=(MONITOR_LAYER, config.runtime, config.architecture.value),
        policy=_monitor_policy(ctx, bucket, ep, mon, name, fn, spec, notifier),
        handler=MONITOR_HANDLER, memory=mon.memory, timeout=mon.timeout, concurrency=None,
        description=f"{ctx.project} monitor {name} on endpoint {mon.endpoint}",
        environment={"MLOPS_MONITOR": canonical_json(spec), "MLOPS_REGISTRY_BUCKET": bucket},
        tags={"mlops:monitor": name},
    ))
    yield from _monitor_failures(config, ctx, name, mon, spec, failed)
    yield from _rule_invokes(
        ctx, f"schedule.{name}", ScheduleRule(
            rule_name=names.schedule_rule(ctx.project, ctx.stage, name),
            schedule_expression=mon.schedule, state="ENABLED",
            description=f"{ctx.project} monitor {name} on endpoint {mon.endpoint}",
            tags=ctx.tags(),
        ), (), unit, fn, permission=f"permission.{unit}", statement="events-invoke",
        target=f"target.{name}", target_id="monitor",
        # The event's own time goes along: a run that starts late still checks the window
        # ending at its scheduled time (EventBridge and the local scheduler alike).
        transformer={
            "InputPathsMap": {"time": "$.time"},
            "InputTemplate": canonical_json(
                {"source": "mlops.schedule", "monitor": name, "time": "<time>"}),
        })
    yield from _landing(ctx, bucket, name, mon, fn)


def landing_pattern(bucket: str, endpoint: str) -> dict[str, Any]:
    """The EventBridge pattern of S3's events for the capture objects of ``endpoint`` created
    in ``bucket`` (PutObject, POST Object, CopyObject, CompleteMultipartUpload: Firehose's
    deliveries among them)."""
    return {"source": ["aws.s3"], "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]},
                       "object": {"key": [{"prefix": f"capture/{endpoint}/"}]}}}


def _landing(ctx: CompileContext, bucket: str, name: str, mon: Monitor, fn: str,
             ) -> Iterator[Resource]:
    """The monitor's landing rule: each capture object of its endpoint, as it lands in the
    registry bucket (which sends its events to EventBridge), is handed to the monitor's alias
    (asynchronously), which profiles it into its partial profile and does nothing else. An
    EventBridge rule and not an S3 notification: S3 refuses overlapping prefixes for one event
    type, and two monitors may watch one endpoint. A failed profiling goes, like a failed run,
    to the failure notifier, which counts it without mailing."""
    unit = names.monitor_unit(name)
    yield from _rule_invokes(
        ctx, f"landing.{name}", ScheduleRule(
            # "." is in no monitor's name: no other rule of the stage is called so
            rule_name=names.schedule_rule(ctx.project, ctx.stage, f"{name}.landed"),
            event_pattern=landing_pattern(bucket, mon.endpoint), state="ENABLED",
            description=f"{ctx.project} monitor {name}: each capture object of endpoint "
                        f"{mon.endpoint} profiled as it lands",
            tags=ctx.tags(),
        ), ("registry",), unit, fn, permission=f"landing-permission.{unit}",
        statement="events-invoke-landed", target=f"landing-target.{name}", target_id="profile")



def _monitor_failures(config: Config, ctx: CompileContext, name: str, mon: Monitor,
                      spec: Mapping[str, Any], failed: str) -> Iterator[Resource]:
    """The monitor's failure notifier (a function with the monitor's settings that turns a
    failed run's record into a [FAILURE] report, e-mail and metric) and the monitor alias's
    asynchronous invocation settings that send failed runs to it (no retry: a run that timed
    out or ran out of memory would again)."""
    bucket = config.registry.bucket or ctx.bucket
    unit = names.monitor_unit(name)
    fn = names.function_name(ctx.project, ctx.stage, unit)
    notifier = names.function_name(ctx.project, ctx.stage, failed)
    yield from _function_unit(ctx, bucket, FunctionUnit(
        unit=failed,
        layer=(MONITOR_LAYER, config.runtime, config.architecture.value),
        policy=_monitor_policy(ctx, bucket, config.endpoints[mon.endpoint], mon, name,
                               notifier, spec, None),
        handler=MONITOR_FAILURE_HANDLER, memory=FAILURE_MEMORY, timeout=FAILURE_TIMEOUT,
        concurrency=None,
        description=f"{ctx.project} monitor {name}: reports its failed runs",
        environment={"MLOPS_MONITOR": canonical_json(spec), "MLOPS_REGISTRY_BUCKET": bucket},
        tags={"mlops:monitor": name},
    ))
    yield Resource.of(f"on-failure.{unit}", LambdaEventInvokeConfig(
        function_name=fn, qualifier=names.ALIAS, maximum_retry_attempts=0,
        maximum_event_age_s=21600,
        on_failure=names.function_arn(ctx.region, ctx.account_id, notifier, names.ALIAS),
    ), (f"alias.{unit}", f"alias.{failed}"))


def _emails(config: Config) -> Iterator[Resource]:
    addresses: set[str] = set()
    for mon in config.monitors.values():
        addresses.update(mon.notify.email)
        if mon.notify.sender:
            addresses.add(mon.notify.sender)
    for address in sorted(addresses):
        yield Resource.of(f"email.{address}", SesIdentity(email=address))


Rule = Callable[[Config, CompileContext], Iterator[Resource]]


def _endpoints(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    for name, ep in config.endpoints.items():
        yield from _endpoint(config, ctx, name, ep)
    if not config.endpoints:
        return
    # OIP v2 server health and metadata, so KServe/Triton clients' probes work unchanged;
    # answered by the first endpoint by name (adding an endpoint rarely moves them).
    first = min(config.endpoints)
    target = ref(f"integration.{first}", "integration_id", "integrations/{}")
    for suffix, route_key, public in names.SERVER_ROUTES:
        yield Resource.of(f"route.{suffix}", ApiRoute(
            api_id=ref("api", "api_id"), route_key=route_key, target=target,
            authorization="none" if public else config.endpoints[first].auth.value))


def _monitors(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    for name, mon in config.monitors.items():
        yield from _monitor(config, ctx, name, mon)


RULES: tuple[Rule, ...] = (
    _bucket,
    _model_objects,
    _bucket_policy,
    _layers,
    _api,
    _endpoints,
    _api_stage,
    _deployments,
    _monitors,
    lambda config, _ctx: _emails(config),
)


def compile_config(config: Config, ctx: CompileContext) -> ResourceGraph:
    """Compile a validated config into the resource graph for one stage."""
    missing = [m for m in config.models if m not in ctx.artifacts]
    if missing:
        raise ValueError(f"no artifact info for models: {', '.join(missing)}")
    return ResourceGraph.of(res for rule in RULES for res in rule(config, ctx))
