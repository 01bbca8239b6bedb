"""Read what the dashboard shows, through the framework's own readers (no key layouts here).

Everything a page needs ends up in ``SiteData``; rendering never touches AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from framework.rollout.record import RolloutRecord

if TYPE_CHECKING:
    from framework.workflow import Session

MAX_RUNS = 60  # newest runs per monitor with their report pages
MAX_AUDIT = 500  # newest audit records on the audit page


@dataclass
class ModelView:
    name: str
    versions: list[dict[str, Any]]  # metadata.json of each version, oldest first
    aliases: dict[str, str]
    history: list[dict[str, Any]]  # alias changes, oldest first
    approvals: dict[str, list[dict[str, Any]]]  # version -> approval records
    cards: dict[str, str]  # version -> model card HTML
    declared: str | None = None  # the version mlops.yaml declares


@dataclass
class EndpointView:
    name: str
    route: str
    url: str | None
    model: str
    model_version: str | None  # model version behind the serving Lambda version
    lambda_version: str | None
    rollout: RolloutRecord | None


@dataclass
class RunView:
    run_id: str
    time: str
    status: str
    figures: dict[str, Any]
    window: dict[str, Any]
    report_key: str
    report: dict[str, Any] | None = None  # report.json of the newest runs
    html: bytes | None = None  # the stored report.html


@dataclass
class MonitorView:
    name: str
    endpoint: str
    schedule: str
    runs: list[RunView]  # oldest first


@dataclass
class SiteData:
    project: str
    stage: str
    target: str
    region: str
    account: str
    bucket: str
    generated_at: str
    models: list[ModelView] = field(default_factory=list)
    endpoints: list[EndpointView] = field(default_factory=list)
    monitors: list[MonitorView] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    warnings: list[str] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def collect(session: Session, *, max_runs: int = MAX_RUNS, max_audit: int = MAX_AUDIT,
            ) -> SiteData:
    """Everything the dashboard shows, read from the session's registry bucket."""
    t = session.target
    data = SiteData(project=session.ws.project, stage=session.ws.stage, target=t.kind.value,
                    region=t.region, account=t.account_id, bucket=session.bucket,
                    generated_at=now_iso())
    if not session.store.bucket_exists():
        data.warnings.append(f"the registry bucket s3://{session.bucket} does not exist yet; "
                             "run `mlops deploy`")
        return data
    data.models = _models(session)
    data.endpoints = _endpoints(session)
    data.monitors = [_monitor(session, name, max_runs)
                     for name in sorted(session.ws.loaded.config.monitors)]
    data.audit = _audit(session, max_audit)
    return data


def _models(session: Session) -> list[ModelView]:
    from framework.registry import card
    from framework.registry.service import lineage
    from framework.workflow import registry

    reg = registry(session)
    config = session.ws.loaded.config
    names = sorted(set(reg.models()) | set(config.models))
    out = []
    for name in names:
        versions = reg.versions(name)
        metas = [reg.metadata(name, v) for v in versions]
        aliases = reg.aliases(name)
        approvals = {v: reg.approvals(name, v) for v in versions}
        declared = config.models.get(name)
        cards = {}
        for meta in metas:
            version = str(meta["version"])
            title = f"{name}@{version}"
            parts = card.sections(
                meta, intended_use=declared.intended_use if declared else "",
                limitations=list(declared.limitations) if declared else [],
                chain=lineage(reg, name, version), approvals=approvals[version],
                aliases=aliases)
            cards[version] = card.to_html(title, parts)
        out.append(ModelView(name=name, versions=metas, aliases=aliases,
                             history=reg.history(name), approvals=approvals, cards=cards,
                             declared=declared.version if declared else None))
    return out


def _endpoints(session: Session) -> list[EndpointView]:
    from framework.rollout.session import records
    from framework.workflow import endpoints

    state = session.store.load()
    deployed = {e.name: e for e in endpoints(session, state)}
    rollouts = {r.endpoint: r for r in records(session)}
    out = []
    for name, ep in session.ws.loaded.config.endpoints.items():
        info = deployed.get(name)
        rec = rollouts.get(name)
        fn = state.resources.get(f"function.{name}")
        env = ((fn.props or {}).get("environment") or {}) if fn is not None else {}
        model_version = env.get("MLOPS_MODEL_VERSION")
        if rec is not None and info is not None and info.version in (rec.stable, rec.candidate):
            model_version = rec.candidate_model if info.version == rec.candidate \
                else rec.stable_model
        out.append(EndpointView(
            name=name, route=ep.route, url=info.url if info else None, model=ep.model,
            model_version=str(model_version) if model_version else None,
            lambda_version=info.version if info else None, rollout=rec))
    return out


def _monitor(session: Session, name: str, max_runs: int) -> MonitorView:
    from framework.monitoring.run import history_key
    from framework.monitoring.store import S3Store

    store = S3Store(session.target.conn.client("s3"), session.bucket)
    mon = session.ws.loaded.config.monitors[name]
    raw = store.get(history_key(name))
    try:
        history = json.loads(raw) if raw else []
    except ValueError:
        history = []
    runs = [RunView(run_id=str(h.get("run_id", "")), time=str(h.get("time", "")),
                    status=str(h.get("status", "")), figures=dict(h.get("figures") or {}),
                    window=dict(h.get("window") or {}), report_key=str(h.get("report", "")))
            for h in history if isinstance(h, dict)]
    for run in runs[-max_runs:]:
        if not run.report_key.endswith(".json"):
            continue
        body = store.get(run.report_key)
        if body is not None:
            try:
                run.report = json.loads(body)
            except ValueError:
                run.report = None
        run.html = store.get(run.report_key[: -len(".json")] + ".html")
    return MonitorView(name=name, endpoint=mon.endpoint, schedule=mon.schedule, runs=runs)


def _audit(session: Session, max_audit: int) -> list[dict[str, Any]]:
    from framework.registry.audit_query import read_registry, select

    records = read_registry(session.target.conn.client("s3"), session.bucket, None)
    return select(records, model=None, since=None)[-max_audit:]
