"""Config → ResourceGraph. Pure and deterministic: identical input, byte-identical output.

Everything that needs the outside world (artifact hashes, the code bundle, the account id)
arrives in ``CompileContext``; one function per resource kind turns config into specs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from framework.compile import names
from framework.compile.graph import Resource, ResourceGraph, canonical_json, digest, ref
from framework.config.models import Config, Endpoint, Monitor, Throttle
from framework.config.semver import SemVer
from framework.errors import ConfigError, Problem

INFRA = Path(__file__).resolve().parents[2] / "infra"
SERVE_LAYER = "serve"  # the layer need of endpoint functions (framework.layers.NEEDS)
MONITOR_LAYER = "monitor"  # ... and of monitor functions
HANDLER = "handlers.inference.handler"
MONITOR_HANDLER = "handlers.monitor.handler"
MONITOR_MEMORY = 1024
MONITOR_TIMEOUT = 300
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
CAPTURE_BUFFER_S = 60  # Firehose delivers a batch at least this often...
CAPTURE_BUFFER_MB = 5  # ...or when this much has arrived


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
    bucket = config.registry.bucket or ctx.bucket
    yield Resource("s3_bucket", "registry", {"bucket": bucket, "versioning": True,
                                             "region": ctx.region, "tags": ctx.tags()})


def _model_objects(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """One registered version per declared model (artifact, reference profile, then
    metadata.json as the commit: see ``framework.registry``), plus the handler zip."""
    bucket = config.registry.bucket or ctx.bucket
    for name, model in config.models.items():
        art = ctx.artifacts[name]
        yield Resource("model_version", f"model.{name}@{model.version}", {
            "bucket": bucket, "name": name, "version": model.version,
            "prefix": names.model_prefix(name, model.version), "sha256": art.sha256,
            "size": art.size, "source": art.source, "reference": model.reference,
            "metadata": json.loads(art.metadata),
        }, ("registry",))
    yield Resource("s3_object", "code", {
        "bucket": bucket, "key": names.code_key(ctx.code.sha256), "sha256": ctx.code.sha256,
        "size": ctx.code.size, "source": ctx.code.source, "content_type": "application/zip",
        "immutable": True, "retain": True,
    }, ("registry",))


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
    alias_props: dict[str, Any] = field(default_factory=dict)


def _function_unit(ctx: CompileContext, bucket: str, u: FunctionUnit) -> Iterator[Resource]:
    fn = names.function_name(ctx.project, ctx.stage, u.unit)
    role = names.role_name(ctx.project, ctx.stage, u.unit)
    yield Resource("iam_role", f"role.{u.unit}", {
        "role_name": role,
        "trust_policy": _template("lambda-trust.json"),
        "policy_name": names.policy_name(ctx.project, ctx.stage, u.unit),
        "policy": u.policy,
        "tags": ctx.tags(),
    })
    yield Resource("log_group", f"logs.{u.unit}", {
        "name": names.log_group(fn), "retention_days": LOG_RETENTION_DAYS, "tags": ctx.tags(),
    })
    layer = ctx.layer(u.layer)
    function_props: dict[str, Any] = {
        "function_name": fn,
        "runtime": layer.runtime,
        "architectures": [layer.architecture],
        "layers": [ref(f"layer.{layer.unit}", "layer_version_arn")],
        "handler": u.handler,
        "role_arn": names.role_arn(ctx.account_id, role),
        "code": {"bucket": bucket, "key": names.code_key(ctx.code.sha256),
                 "sha256": ctx.code.sha256},
        "memory": u.memory,
        "timeout": u.timeout,
        "concurrency": u.concurrency,
        "description": u.description,
        "environment": u.environment,
        "tags": {**ctx.tags(), "mlops:registry": bucket, **u.tags},
    }
    deps = [f"role.{u.unit}", f"logs.{u.unit}", "code", *u.depends_on]  # + the layer's ref
    yield Resource("lambda_function", f"function.{u.unit}", function_props, tuple(deps))
    # The layer's bytes count too: a new layer version must reach the live alias.
    yield Resource("lambda_version", f"version.{u.unit}", {
        "function_name": fn,
        "function_digest": digest({**function_props, "layer_sha256": layer.sha256}),
    }, (f"function.{u.unit}",))
    yield Resource("lambda_alias", f"alias.{u.unit}", {
        "function_name": fn, "alias": names.ALIAS,
        "function_version": ref(f"version.{u.unit}", "version"), **u.alias_props,
    })


def _capture_stream(ctx: CompileContext, bucket: str, ep_name: str,
                    stream: str) -> Iterator[Resource]:
    """A Firehose stream batching the endpoint's captured rows into gzip JSON lines under
    ``capture/{endpoint}/dt=YYYY-MM-DD/`` — the layout the monitors read."""
    unit = f"{ep_name}-capture"
    role = names.role_name(ctx.project, ctx.stage, unit)
    yield Resource("iam_role", f"role.{unit}", {
        "role_name": role,
        "trust_policy": _template("firehose-trust.json"),
        "policy_name": names.policy_name(ctx.project, ctx.stage, unit),
        "policy": _template("capture-stream.json", bucket=bucket, endpoint=ep_name),
        "tags": ctx.tags(),
    })
    yield Resource("firehose_stream", f"stream.{ep_name}", {
        "stream_name": stream, "bucket": bucket, "role_arn": names.role_arn(ctx.account_id, role),
        "prefix": f"capture/{ep_name}/dt=!{{timestamp:yyyy-MM-dd}}/",
        "error_prefix": f"capture-errors/{ep_name}/!{{firehose:error-output-type}}/",
        "buffer_seconds": CAPTURE_BUFFER_S, "buffer_mb": CAPTURE_BUFFER_MB,
        "compression": "GZIP", "extension": ".jsonl.gz", "tags": ctx.tags(),
    }, (f"role.{unit}", "registry"))


def _endpoint(config: Config, ctx: CompileContext, ep_name: str, ep: Endpoint,
              ) -> Iterator[Resource]:
    bucket = config.registry.bucket or ctx.bucket
    fn = names.function_name(ctx.project, ctx.stage, ep_name)
    version, model_sha256, declared = _served_version(config, ctx, ep_name, ep)
    model_name = ep.model_name
    policy = _template("inference-function.json", bucket=bucket, model=model_name,
                       endpoint=ep_name, region=ctx.region, account=ctx.account_id,
                       log_group=names.log_group(fn))
    stream_env: dict[str, str] = {}
    stream_deps: tuple[str, ...] = ()
    if ep.capture and ep.capture.sample_rate > 0:
        stream = names.capture_stream(ctx.project, ctx.stage, ep_name)
        yield from _capture_stream(ctx, bucket, ep_name, stream)
        policy["Statement"].append({
            "Sid": "SendOwnCapture", "Effect": "Allow", "Action": ["firehose:PutRecordBatch"],
            "Resource": [f"arn:aws:firehose:{ctx.region}:{ctx.account_id}:deliverystream/"
                         f"{stream}"]})
        stream_env = {"MLOPS_CAPTURE_STREAM": stream}
        stream_deps = (f"stream.{ep_name}",)
    runtime, arch = config.endpoint_runtime(ep_name)
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
            **stream_env,
        },
        tags={"mlops:endpoint": ep_name},
        depends_on=((f"model.{model_name}@{version}",) if declared else ()) + stream_deps,
        alias_props={"endpoint": ep_name, "rollout": ep.rollout.model_dump(mode="json")},
    ))
    alias_arn = names.function_arn(ctx.region, ctx.account_id, fn, names.ALIAS)
    yield Resource("api_integration", f"integration.{ep_name}", {
        "api_id": ref("api", "api_id"), "integration_uri": alias_arn,
        "payload_format_version": "2.0", "timeout_ms": min(ep.timeout * 1000, 30000),
    }, (f"alias.{ep_name}",))
    target = ref(f"integration.{ep_name}", "integration_id", "integrations/{}")
    yield Resource("api_route", f"route.{ep_name}", {
        "api_id": ref("api", "api_id"), "route_key": ep.route, "target": target,
        "authorization": ep.auth.value,
    })
    # Feedback, OpenAPI document and Open Inference Protocol v2: same function, same auth.
    for suffix, route_key in names.endpoint_routes(ep.route, ep_name):
        yield Resource("api_route", f"route.{ep_name}.{suffix}", {
            "api_id": ref("api", "api_id"), "route_key": route_key, "target": target,
            "authorization": ep.auth.value,
        })
    yield Resource("lambda_permission", f"permission.{ep_name}", {
        "function_name": fn, "qualifier": names.ALIAS, "statement_id": "http-api-invoke",
        "principal": "apigateway.amazonaws.com",
        "source_arn": ref("api", "api_id",
                          f"arn:aws:execute-api:{ctx.region}:{ctx.account_id}:{{}}/*/*"),
    }, (f"alias.{ep_name}",))


def _layers(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    """Each layer a function needs: its zip in the registry, then the published version."""
    bucket = config.registry.bucket or ctx.bucket
    for need in required_layers(config):
        layer = ctx.layer(need)
        key = names.layer_key(layer.sha256)
        yield Resource("s3_object", f"layer-zip.{layer.unit}", {
            "bucket": bucket, "key": key, "sha256": layer.sha256, "size": layer.size,
            "source": layer.source, "content_type": "application/zip", "immutable": True,
            "retain": True,
        }, ("registry",))
        description = f"mlops {layer.need} layer: {layer.summary}" if layer.summary else (
            f"mlops {layer.need} layer")
        yield Resource("lambda_layer", f"layer.{layer.unit}", {
            "layer_name": names.layer_name(ctx.project, ctx.stage, layer.unit),
            "bucket": bucket, "key": key, "sha256": layer.sha256,
            "need": layer.need, "runtimes": [layer.runtime],
            "architectures": [layer.architecture], "description": description[:256],
            "packages": {name: dict(p) for name, p in sorted(layer.packages.items())},
        }, (f"layer-zip.{layer.unit}",))


def _api(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    if config.endpoints:
        yield Resource("http_api", "api", {
            "name": names.api_name(ctx.project, ctx.stage), "protocol": "HTTP",
            "stage": "$default", "tags": ctx.tags(),
        })


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
        yield Resource("log_group", "logs.api", {
            "name": group, "retention_days": LOG_RETENTION_DAYS, "tags": ctx.tags()})
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
    yield Resource("api_stage", "stage.api", {
        "api_id": ref("api", "api_id"), "stage": "$default", "auto_deploy": True,
        "access_log": access_log, "throttle": _throttle(api.throttle),
        "route_throttles": dict(sorted(routes.items())),
    }, tuple(deps))


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
    }


def _monitor(config: Config, ctx: CompileContext, name: str, mon: Monitor,
             ) -> Iterator[Resource]:
    bucket = config.registry.bucket or ctx.bucket
    unit = names.monitor_unit(name)
    fn = names.function_name(ctx.project, ctx.stage, unit)
    ep = config.endpoints[mon.endpoint]
    version, _sha, _declared = _served_version(config, ctx, mon.endpoint, ep)
    spec = monitor_spec(config, ctx, name, mon, version)
    yield from _function_unit(ctx, bucket, FunctionUnit(
        unit=unit,
        layer=(MONITOR_LAYER, config.runtime, config.architecture.value),
        policy=_template("monitor-function.json", bucket=bucket, model=ep.model_name,
                         endpoint=mon.endpoint, monitor=name, region=ctx.region,
                         account=ctx.account_id, log_group=names.log_group(fn),
                         project=ctx.project, endpoint_function=spec["endpoint_function"]),
        handler=MONITOR_HANDLER, memory=MONITOR_MEMORY, timeout=MONITOR_TIMEOUT, concurrency=None,
        description=f"{ctx.project} monitor {name} on endpoint {mon.endpoint}",
        environment={"MLOPS_MONITOR": canonical_json(spec), "MLOPS_REGISTRY_BUCKET": bucket},
        tags={"mlops:monitor": name},
    ))
    rule = names.schedule_rule(ctx.project, ctx.stage, name)
    yield Resource("schedule_rule", f"schedule.{name}", {
        "rule_name": rule,
        "schedule_expression": mon.schedule, "state": "ENABLED",
        "description": f"{ctx.project} monitor {name} on endpoint {mon.endpoint}",
        "tags": ctx.tags(),
    })
    yield Resource("lambda_permission", f"permission.{unit}", {
        "function_name": fn, "qualifier": names.ALIAS, "statement_id": "events-invoke",
        "principal": "events.amazonaws.com",
        "source_arn": ref(f"schedule.{name}", "arn"),
    }, (f"alias.{unit}",))
    yield Resource("schedule_target", f"target.{name}", {
        "rule_name": rule, "target_id": "monitor",
        "arn": names.function_arn(ctx.region, ctx.account_id, fn, names.ALIAS),
        # The event's own time goes along: a run that starts late still checks the window
        # ending at its scheduled time (EventBridge and the local scheduler alike).
        "input_transformer": {
            "InputPathsMap": {"time": "$.time"},
            "InputTemplate": canonical_json(
                {"source": "mlops.schedule", "monitor": name, "time": "<time>"}),
        },
    }, (f"schedule.{name}", f"alias.{unit}", f"permission.{unit}"))


def _emails(config: Config) -> Iterator[Resource]:
    addresses: set[str] = set()
    for mon in config.monitors.values():
        addresses.update(mon.notify.email)
        if mon.notify.sender:
            addresses.add(mon.notify.sender)
    for address in sorted(addresses):
        yield Resource("ses_identity", f"email.{address}", {"email": address})


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
        yield Resource("api_route", f"route.{suffix}", {
            "api_id": ref("api", "api_id"), "route_key": route_key, "target": target,
            "authorization": "none" if public else config.endpoints[first].auth.value,
        })


def _monitors(config: Config, ctx: CompileContext) -> Iterator[Resource]:
    for name, mon in config.monitors.items():
        yield from _monitor(config, ctx, name, mon)


RULES: tuple[Rule, ...] = (
    _bucket,
    _model_objects,
    _layers,
    _api,
    _endpoints,
    _api_stage,
    _monitors,
    lambda config, _ctx: _emails(config),
)


def compile_config(config: Config, ctx: CompileContext) -> ResourceGraph:
    """Compile a validated config into the resource graph for one stage."""
    missing = [m for m in config.models if m not in ctx.artifacts]
    if missing:
        raise ValueError(f"no artifact info for models: {', '.join(missing)}")
    return ResourceGraph.of(res for rule in RULES for res in rule(config, ctx))
