"""The deploy pipeline end to end: load → compile → refresh → plan → apply.

The CLI is a thin layer over these functions; tests drive them directly as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.apply.audit import AuditLog
from framework.apply.executor import DEFAULT_PARALLELISM, Executor, Progress
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
from framework.errors import ConfigError, MlopsError, Problem
from framework.package import build_code_bundle, describe_artifacts, describe_holdouts
from framework.plan.planner import Plan, make_plan, served_model
from framework.plan.state import State
from framework.providers.aws import AwsProvider
from framework.targets import Target, connect

if TYPE_CHECKING:
    from framework.gates import Champion
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
    gate_records: list[dict[str, Any]] = field(default_factory=list)  # audited after apply

    @property
    def bucket(self) -> str:
        return self.store.bucket


def state_store(ws: Workspace, s3: Any, bucket: str) -> StateStore:
    """The deploy state of the workspace's project and stage (registry bucket + cache)."""
    return StateStore(s3=s3, bucket=bucket, project=ws.project, stage=ws.stage,
                      cache_dir=ws.home / "state", config=ws.loaded.path.name)


_OPENED: list[Workspace] = []  # the workspaces this process connected, newest last


def explain(exc: BaseException) -> MlopsError | None:
    """What an error a command did not expect means to its user, when that is known: the
    registry bucket missing (NoSuchBucket) means nothing is deployed for the stage."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or not _OPENED:
        return None
    error = response.get("Error", {})
    if error.get("Code") != "NoSuchBucket":
        return None
    ws = _OPENED[-1]
    bucket = error.get("BucketName") or "the registry bucket"
    return MlopsError(f"nothing is deployed for {ws.project}/{ws.stage} (its registry bucket "
                      f"{bucket} does not exist)", hint="deploy it with `mlops deploy`")


def open_session(ws: Workspace, *, start_local: bool = True) -> Session:
    _OPENED.append(ws)
    cfg = ws.loaded
    target = connect(cfg.target, cfg.region, local_home=ws.local_home,
                     endpoint_url=cfg.endpoint_url, profile=cfg.profile,
                     start_local=start_local)
    bucket = cfg.config.registry.bucket or names.registry_bucket(
        ws.project, target.account_id, target.region)
    s3 = target.conn.client("s3")
    store = state_store(ws, s3, bucket)
    audit = AuditLog(s3=s3, bucket=bucket, local_file=ws.home / "audit.jsonl")
    provider = AwsProvider(target.conn, ws.root, local=target.kind.value == "local")
    return Session(ws=ws, target=target, provider=provider, store=store, audit=audit,
                   warnings=list(cfg.warnings))


def workspace_layers(ws: Workspace, *, fresh: bool = False,
                     keys: list[LayerKey] | None = None) -> dict[LayerKey, LayerBundle]:
    """The layers the stage's functions need (``required_layers``), built where missing.

    A fresh checkout rebuilds them from the wheels ``mlops.lock`` records for the stage (see
    ``framework.layers``); ``fresh`` resolves the packages afresh (``mlops layer build``)."""
    from framework import lockfile
    from framework.layers import bundle, ensure_layer, pins_from_lock
    from framework.package import code_unzipped_bytes

    build = ws.home / "build"
    locked = lockfile.entry(ws.root / "mlops.lock", ws.project, ws.stage)
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
                         layers=workspace_layers(ws) if layers is None else dict(layers),
                         holdouts=describe_holdouts(ws.loaded.config, ws.root))
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
    """Settings the stage's target cannot honour are refused before anything changes. Every
    setting is honoured on every target today: shadow rollouts too, since the serving function
    sends the copies itself (``framework.runtime.shadow``), which API Gateway, LocalStack and
    the local gateway need not know about."""
    del session


def check_integrity(session: Session, resources: Iterable[tuple[str, Mapping[str, Any]]],
                    deployed: State) -> None:
    """Refuse (exit 7) when a registered version that ``resources`` — ``(kind, props)`` of
    what is about to be deployed — register or serve has other bytes in the registry than
    its metadata records; a damaged version only the current deployment serves is a warning
    (this deploy replaces it)."""
    from framework.registry.integrity import damaged, refusal, served_versions

    if not session.store.bucket_exists():
        return
    reg = registry(session)
    wanted = served_versions(resources)
    found = damaged(reg, wanted)
    if found:
        raise refusal(found)
    leaving = [v for v in served_versions((e.kind, e.props) for e in deployed.resources.values())
               if v not in wanted]
    for d in damaged(reg, leaving):
        session.warnings.append(f"{d.name}@{d.version}, which serves now, is damaged ({d.what});"
                                " this deploy stops serving it")


def check_locked_artifacts(session: Session, locked: Mapping[str, Any]) -> None:
    """Every model version a ``mlops.lock`` stage entry records has, in the registry, the
    SHA-256 the lock records, and the stored bytes have it too (exit 7 otherwise)."""
    from framework.lockfile import locked_versions
    from framework.registry.integrity import damaged, refusal

    if not session.store.bucket_exists():
        return
    recorded = locked_versions(locked)
    found = damaged(registry(session), recorded, recorded)
    if found:
        raise refusal(found)


def check_not_renamed(session: Session, state: State) -> None:
    """A project renamed in its config file is refused while the old name's resources live:
    a plan would create everything again under the new name and leave them running."""
    if state.lineage:
        return  # this project has a history on the stage
    renamed = session.store.renamed_from()
    if renamed is None:
        return
    old, theirs = renamed
    ws = session.ws
    line = next((i for i, text in enumerate(ws.loaded.path.read_text().splitlines(), 1)
                 if text.startswith("project:")), None)
    raise ConfigError([Problem(
        where="project",
        what=f"{ws.loaded.path.name} deployed project '{old}' to stage '{ws.stage}' "
             f"({len(theirs.resources)} resources, still deployed); '{ws.project}' has nothing "
             f"there: deploying it would create everything again under the new name and leave "
             f"'{old}''s resources running",
        hint=f"to rename, set `project: {old}` back, run `mlops destroy --stage {ws.stage}`, "
             f"then set `project: {ws.project}` and deploy; to deploy a second project from "
             f"this folder, give it its own file (`mlops deploy -f {ws.project}.yaml`)",
        line=line, column=10 if line else None)], source=str(ws.loaded.path))


def plan(session: Session, *, destroy: bool = False, allow_downgrade: bool = False,
         undo_rollback: bool = False) -> Plan:
    """What a deploy (or, ``destroy``, a destroy) would change; endpoints' live aliases moved
    outside mlops are reconciled (``framework.drift``: moved back, or a monitor's rollback
    kept unless ``undo_rollback``)."""
    the_plan = _plan(session, destroy=destroy, allow_downgrade=allow_downgrade)
    if destroy:
        return the_plan
    state = session.store.load()
    if not any(e.kind == "lambda_alias" for e in state.resources.values()) \
            or not session.store.bucket_exists():
        return the_plan
    from framework.drift import live_aliases, reconcile

    live = live_aliases(session, state)
    if undo_rollback and not any(a.rollback is not None for a in live.values()):
        session.warnings.append("--undo-rollback: no endpoint serves a rolled-back version")
    return reconcile(the_plan, live, undo_rollback=undo_rollback)


def _plan(session: Session, *, destroy: bool, allow_downgrade: bool) -> Plan:
    if not destroy:
        check_target_support(session)
    state = session.store.load()
    if not destroy:
        check_not_renamed(session, state)
        from framework.versions_guard import check as check_versions  # no older version back

        session.warnings += check_versions(session.ws.loaded.config, state, allow=allow_downgrade,
                                           source=str(session.ws.loaded.path))
    graph = (ResourceGraph() if destroy else
             compile_workspace(session.ws, session.target.account_id, session.target.region,
                               resolve_models(session)))
    if not destroy:
        check_integrity(session, ((r.kind, r.props) for r in graph.resources.values()), state)
    live = refresh(session, state)
    if not state.project:
        state = State(project=session.ws.project, stage=session.ws.stage, lineage="")
    return make_plan(graph, state, live, target=session.target.kind.value,
                     region=session.target.region, account_id=session.target.account_id,
                     destroy=destroy, observed=session.provider.observed(state))


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
          on_progress: Progress | None = None, saved: bool = False,
          parallelism: int = DEFAULT_PARALLELISM) -> State:
    executor = Executor(provider=session.provider, store=session.store, audit=session.audit,
                        actor=session.target.actor, command=command, on_progress=on_progress,
                        saved=saved, parallelism=parallelism)
    try:
        state = executor.apply(the_plan)
        if not the_plan.destroy and the_plan.changes:
            from framework.drift import record_serving

            session.warnings.extend(record_serving(session, state))
        return state
    finally:
        session.warnings.extend(session.store.warnings)
        session.target.refresh_gateway()
        while session.gate_records:  # gates that ran before the registry existed
            record_gates(session, session.gate_records.pop(0), now=True)


@dataclass(frozen=True)
class EndpointInfo:
    name: str
    route: str
    url: str
    version: str | None  # the Lambda version the alias serves
    model: str | None = None  # the model that version serves ("diagnosis 1.1.0"), when known
    # read live (``endpoints(live=True)``): the other versions' shares while a rollout runs,
    # what the state records when the alias moved outside mlops, and what status says of it
    routing: list[dict[str, Any]] = field(default_factory=list)
    state_version: str | None = None
    state_model: str | None = None
    note: str = ""


def endpoints(session: Session, state: State, *, live: bool = False) -> list[EndpointInfo]:
    """The deployed endpoints; with ``live``, as their aliases serve now (Lambda's answer,
    each version's model from its environment) rather than as the state recorded them."""
    api = state.resources.get("api")
    aliases: dict[str, Any] = {}
    unread = ""
    if live and api is not None:
        from framework.drift import live_aliases

        try:
            aliases = live_aliases(session, state)
        except Exception as exc:  # the state's word, with why it is not Lambda's
            unread = f"live alias unreadable ({type(exc).__name__}: {exc}); as recorded"
    out = []
    for name, ep in session.ws.loaded.config.endpoints.items():
        if api is None or f"route.{name}" not in state.resources:
            continue
        method, path = ep.route.split(" ", 1)
        alias = state.resources.get(f"alias.{name}")
        version = str(alias.outputs.get("version")) if alias else None
        published, fn = state.resources.get(f"version.{name}"), state.resources.get(
            f"function.{name}")
        model = None  # the function's recorded properties are its latest version's
        if published and fn and str(published.outputs.get("version")) == version:
            model = served_model(fn.props) or None
        url = session.target.endpoint_url(api.outputs, path)
        now = aliases.get(name)
        if now is None:
            out.append(EndpointInfo(name=name, route=ep.route, url=url, version=version,
                                    model=model, state_version=version, state_model=model,
                                    note=unread if live else ""))
            continue
        out.append(EndpointInfo(
            name=name, route=ep.route, url=url, version=now.version,
            model=now.model or None, state_version=version,
            state_model=now.recorded_model or model, note=now.note(),
            routing=[{"version": v, "model": now.weight_models.get(v) or None, "weight": w}
                     for v, w in sorted(now.weights.items())]))
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


def run_gates(ws: Workspace, name: str, previous: Mapping[str, Any] | None,
              session: Session | None = None, *,
              champion: tuple[Champion | None, str] | None = None) -> list[Any]:
    """Evaluate one model's gates against its declared artifact (see ``framework.gates``);
    relative thresholds against ``champion`` (default: looked up through ``session``)."""
    from framework.artifacts import build_metadata
    from framework.gates import evaluate
    from framework.latency import handler_latency
    from framework.progress import say

    model = ws.loaded.config.models[name]
    say(f"measuring {name} {model.version} on its hold-out for its gates")
    metadata = build_metadata(name, model, ws.root / model.artifact)
    found, why = champion if champion is not None else champion_of(session, ws, name)
    return evaluate(name, model, ws.root, metadata, previous,
                    latency=lambda: handler_latency(ws, name, metadata),
                    champion=found, no_champion=why,
                    champion_latency=None if found is None else lambda: handler_latency(
                        ws, name, found.metadata, artifact=found.artifact))


def champion_of(session: Session | None, ws: Workspace, name: str,
                ) -> tuple[Champion | None, str]:
    """The version serving ``name`` that its relative gates compare with, or why there is
    none (see ``framework.champion``); nothing is read when no gate is relative."""
    from framework.champion import OFFLINE, find_champion

    model = ws.loaded.config.models[name]
    if not any(threshold.relative for threshold in model.gates.values()):
        return None, ""
    if session is None:
        return None, OFFLINE
    return find_champion(session, name, model.version)


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
    from framework.gates import GateFailedError, audit_fields

    results: dict[str, list[Any]] = {}
    for name in gate_models(session, the_plan):
        model = session.ws.loaded.config.models[name]
        champion = champion_of(session, session.ws, name)
        got = run_gates(session.ws, name, previous_metadata(session, name, model.version),
                        champion=champion)
        results[name] = got
        record_gates(session, audit_fields(name, model.version, got, champion[0]),
                     now=not all(r.passed for r in got))
        if not all(r.passed for r in got):
            raise GateFailedError(name, model.version, got)
    return results


def record_gates(session: Session, fields: dict[str, Any], *, now: bool = False) -> None:
    """Audit a version's gates. Before the stage's first deploy there is no registry yet:
    the record waits for the apply that creates it (``now`` writes it at once, to the local
    mirror at least)."""
    if not now and not session.store.bucket_exists():
        session.gate_records.append(fields)
        return
    try:
        session.audit.record(actor=session.target.actor, command="mlops deploy",
                             project=session.ws.project, stage=session.ws.stage, **fields)
    except Exception as exc:  # the local mirror has it; the registry may not exist (yet)
        session.warnings.append(f"audit record not stored in the registry: {exc}")


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
