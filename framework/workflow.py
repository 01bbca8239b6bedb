"""The deploy pipeline end to end: load → compile → refresh → plan → apply.

The CLI is a thin layer over these functions; tests drive them directly as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.apply.audit import AuditLog
from framework.apply.executor import Executor, Progress
from framework.apply.store import StateStore
from framework.compile import (
    CompileContext,
    LayerBundle,
    ResourceGraph,
    compile_config,
    names,
    required_layers,
)
from framework.compile.compiler import LayerKey, ResolvedModel
from framework.config.loader import LoadedConfig, load_config
from framework.errors import ConfigError, Problem
from framework.package import build_code_bundle, describe_artifacts
from framework.plan.planner import Plan, make_plan
from framework.plan.state import State
from framework.providers.aws import AwsProvider
from framework.targets import Target, connect

if TYPE_CHECKING:
    from framework.registry.store import Registry


@dataclass(frozen=True)
class Workspace:
    """A project on disk: its loaded config and the ``.mlops`` folder beside it."""

    loaded: LoadedConfig

    @classmethod
    def open(cls, path: Path, stage: str | None = None) -> Workspace:
        return cls(load_config(path, stage))

    @property
    def root(self) -> Path:
        return self.loaded.root

    @property
    def home(self) -> Path:
        return self.root / ".mlops"

    @property
    def local_home(self) -> Path:
        return self.home / "local"

    @property
    def project(self) -> str:
        return self.loaded.config.project

    @property
    def stage(self) -> str:
        return self.loaded.stage


@dataclass
class Session:
    """A workspace connected to its stage's target."""

    ws: Workspace
    target: Target
    provider: AwsProvider
    store: StateStore
    audit: AuditLog
    warnings: list[str] = field(default_factory=list)

    @property
    def bucket(self) -> str:
        return self.store.bucket


def open_session(ws: Workspace, *, start_local: bool = True) -> Session:
    cfg = ws.loaded
    target = connect(cfg.target, cfg.region, local_home=ws.local_home,
                     endpoint_url=cfg.endpoint_url, profile=cfg.profile,
                     start_local=start_local)
    bucket = cfg.config.registry.bucket or names.registry_bucket(
        ws.project, target.account_id, target.region)
    s3 = target.conn.client("s3")
    store = StateStore(s3=s3, bucket=bucket, project=ws.project, stage=ws.stage,
                       cache_dir=ws.home / "state")
    audit = AuditLog(s3=s3, bucket=bucket, local_file=ws.home / "audit.jsonl")
    session = Session(ws=ws, target=target, provider=AwsProvider(target.conn, ws.root),
                      store=store, audit=audit, warnings=list(cfg.warnings))
    from framework.rollout.session import install

    install(session)
    return session


def workspace_layers(ws: Workspace, *, fresh: bool = False,
                     keys: list[LayerKey] | None = None) -> dict[LayerKey, LayerBundle]:
    """The layers the stage's functions need (``required_layers``), built where missing.

    A fresh checkout rebuilds them from the wheels ``mlops.lock`` records for the stage (see
    ``framework.layers``); ``fresh`` resolves the packages afresh (``mlops layer build``)."""
    from framework import lockfile
    from framework.layers import bundle, ensure_layer, pins_from_lock
    from framework.package import code_unzipped_bytes

    build = ws.home / "build"
    locked = lockfile.read(ws.root / "mlops.lock")["stages"].get(ws.stage)
    pins = pins_from_lock(locked)
    code_bytes = code_unzipped_bytes()
    out = {}
    for key in required_layers(ws.loaded.config) if keys is None else keys:
        built = ensure_layer(key, build, pins=pins.get(key), code_bytes=code_bytes, fresh=fresh)
        out[key] = bundle(built, build, ws.root)
    return out


def compile_workspace(ws: Workspace, account_id: str, region: str,
                      resolved: Mapping[str, ResolvedModel] | None = None, *,
                      layers: Mapping[LayerKey, LayerBundle] | None = None) -> ResourceGraph:
    """Check artifacts, build the code bundle and the layers, compile. Raises ConfigError on
    bad input. Every target gets the same graph: layers and capture streams included.

    ``resolved`` holds the registry versions that endpoints' NAME@ALIAS / NAME@VERSION name
    (see ``resolve_models``); ``layers`` defaults to ``workspace_layers(ws)``."""
    artifacts = describe_artifacts(ws.loaded.config, ws.root)
    code = build_code_bundle(ws.root, ws.home / "build")
    ctx = CompileContext(project=ws.project, stage=ws.stage, region=region,
                         account_id=account_id, artifacts=artifacts, code=code,
                         resolved=dict(resolved or {}),
                         layers=workspace_layers(ws) if layers is None else dict(layers))
    return compile_config(ws.loaded.config, ctx)


def registry(session: Session) -> Registry:
    """The model registry in the session's bucket; its changes go to the audit log."""
    from framework.registry.store import Registry

    return Registry(s3=session.target.conn.client("s3"), bucket=session.bucket,
                    audit=session.audit, actor=session.target.actor)


def resolve_models(session: Session) -> dict[str, ResolvedModel]:
    """Registry versions of endpoints that serve NAME@ALIAS or another NAME@VERSION."""
    from framework.registry.resolve import resolve_endpoints

    return resolve_endpoints(session.ws.loaded.config, registry(session))


def refresh(session: Session, state: State) -> dict[str, bool]:
    """Which recorded resources still exist on the target (checked concurrently)."""
    if not state.resources:
        return {}
    session.provider.warm({e.kind for e in state.resources.values()})  # clients: not in threads
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = pool.map(session.provider.exists, state.resources.values())
        return dict(zip(state.resources, found, strict=True))


def check_target_support(session: Session) -> None:
    """Settings the stage's target cannot honour are refused before anything changes."""
    from framework.config.models import Strategy, TargetKind

    if session.target.kind is TargetKind.local:
        return
    problems = [Problem(
        where=f"endpoints.{name}.rollout.strategy",
        what=f"shadow rollouts need request mirroring, which {session.target.kind.value} "
             "does not do (API Gateway has none; the local data plane mirrors)",
        hint="use canary or linear on this stage")
        for name, ep in session.ws.loaded.config.endpoints.items()
        if ep.rollout.strategy is Strategy.shadow]
    if problems:
        raise ConfigError(problems, source=str(session.ws.loaded.path))


def plan(session: Session, *, destroy: bool = False) -> Plan:
    if not destroy:
        check_target_support(session)
    state = session.store.load()
    graph = (ResourceGraph() if destroy else
             compile_workspace(session.ws, session.target.account_id, session.target.region,
                               resolve_models(session)))
    live = refresh(session, state)
    if not state.project:
        state = State(project=session.ws.project, stage=session.ws.stage, lineage="")
    return make_plan(graph, state, live, target=session.target.kind.value,
                     region=session.target.region, account_id=session.target.account_id,
                     destroy=destroy)


def check_plan_matches(session: Session, saved: Plan, source: str) -> None:
    """A saved plan must be applied to the stage and account it was made for."""
    t = session.target
    mine = (session.ws.project, session.ws.stage, t.kind.value, t.region, t.account_id)
    theirs = (saved.project, saved.stage, saved.target, saved.region, saved.account_id)
    if mine != theirs:
        raise ConfigError([Problem(
            where=source,
            what=f"the plan is for {'/'.join(theirs)}, not {'/'.join(mine)}",
            hint="apply it with the stage it was made for (--stage)")], source=source)


def apply(session: Session, the_plan: Plan, *, command: str = "mlops deploy",
          on_progress: Progress | None = None) -> State:
    executor = Executor(provider=session.provider, store=session.store, audit=session.audit,
                        actor=session.target.actor, command=command, on_progress=on_progress)
    try:
        return executor.apply(the_plan)
    finally:
        session.warnings.extend(session.store.warnings)
        session.target.refresh_gateway()


@dataclass(frozen=True)
class EndpointInfo:
    name: str
    route: str
    url: str
    version: str | None


def endpoints(session: Session, state: State) -> list[EndpointInfo]:
    api = state.resources.get("api")
    out = []
    for name, ep in session.ws.loaded.config.endpoints.items():
        if api is None or f"route.{name}" not in state.resources:
            continue
        method, path = ep.route.split(" ", 1)
        alias = state.resources.get(f"alias.{name}")
        version = str(alias.outputs.get("version")) if alias else None
        out.append(EndpointInfo(name=name, route=ep.route,
                                url=session.target.endpoint_url(api.outputs, path),
                                version=version))
    return out


def find_endpoint(session: Session, state: State, name: str) -> EndpointInfo:
    for info in endpoints(session, state):
        if info.name == name:
            return info
    declared = ", ".join(session.ws.loaded.config.endpoints) or "none"
    raise ConfigError([Problem(
        where=f"endpoints.{name}", what="no such deployed endpoint",
        hint=f"declared endpoints: {declared}; run `mlops deploy` first")], source="invoke")


def synth(ws: Workspace) -> dict[str, Any]:
    """The CloudFormation template of the workspace's stage, for any account and region."""
    from framework.synth import ACCOUNT, REGION, synthesize

    graph = compile_workspace(ws, ACCOUNT, REGION)  # builds missing layers, as deploy does
    return synthesize(graph, description=f"mlops project {ws.project}, stage {ws.stage}")


def gate_models(session: Session, the_plan: Plan) -> list[str]:
    """Models whose plan registers a new version: those must pass their gates first."""
    return sorted({str(a.props["name"]) for a in the_plan.changes
                   if a.kind == "model_version" and a.props is not None
                   and a.op.value in ("create", "replace")})


def run_gates(ws: Workspace, name: str, previous: Mapping[str, Any] | None) -> list[Any]:
    """Evaluate one model's gates against its declared artifact (see ``framework.gates``)."""
    from framework.artifacts import build_metadata
    from framework.gates import evaluate
    from framework.latency import handler_latency

    model = ws.loaded.config.models[name]
    metadata = build_metadata(name, model, ws.root / model.artifact)
    return evaluate(name, model, ws.root, metadata, previous,
                    latency=lambda: handler_latency(ws, name, metadata))


def previous_metadata(session: Session | None, name: str, version: str,
                      ) -> Mapping[str, Any] | None:
    """metadata.json of the newest registered version of ``name`` below ``version``."""
    if session is None or not session.store.bucket_exists():
        return None
    from framework.config.semver import SemVer

    reg = registry(session)
    lower = [v for v in reg.versions(name) if SemVer.parse(v) < SemVer.parse(version)]
    if not lower:
        return None
    newest = max(lower, key=SemVer.parse)
    return reg.metadata(name, newest)


def check_gates(session: Session, the_plan: Plan) -> dict[str, list[Any]]:
    """Gates of every model the plan ships; raises GateFailedError on the first failure."""
    from framework.gates import GateFailedError

    results: dict[str, list[Any]] = {}
    for name in gate_models(session, the_plan):
        model = session.ws.loaded.config.models[name]
        got = run_gates(session.ws, name, previous_metadata(session, name, model.version))
        results[name] = got
        if not all(r.passed for r in got):
            raise GateFailedError(name, model.version, got)
    return results


def lock_entry(session: Session, state: State) -> dict[str, Any]:
    from framework.lockfile import stage_entry

    t = session.target
    return stage_entry(state, target=t.kind.value, region=t.region, account=t.account_id)


def planned_lock_entry(session: Session) -> dict[str, Any]:
    """The lock entry of what the working tree would deploy now."""
    from framework.plan.state import Entry

    graph = compile_workspace(session.ws, session.target.account_id, session.target.region,
                              resolve_models(session))
    as_state = State(project=session.ws.project, stage=session.ws.stage, resources={
        rid: Entry(res.kind, res.props, {}) for rid, res in graph.resources.items()})
    return lock_entry(session, as_state)
