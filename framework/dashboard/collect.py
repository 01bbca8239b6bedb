"""Read what the dashboard shows through the framework's own readers (no key layouts here),
and publish it: from ``mlops dashboard`` and at the end of every ``mlops deploy``.

Everything the page needs ends up in ``SiteData``; rendering never touches AWS.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from framework.dashboard import site
from framework.dashboard.data import EndpointView, ModelView, RolloutView, SiteData, now_iso
from framework.dashboard.refresh import audit_records, monitor_view
from framework.dashboard.render import render_page

if TYPE_CHECKING:
    from framework.rollout.record import RolloutRecord
    from framework.workflow import Session

BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S)


def collect(session: Session, previous: SiteData | None = None) -> SiteData:
    """Everything the dashboard shows, read from the session's registry bucket; the audit
    records of ``previous`` (the published snapshot) are not read again."""
    t = session.target
    data = SiteData(project=session.ws.project, stage=session.ws.stage, target=t.kind.value,
                    region=t.region, account=t.account_id, bucket=session.bucket,
                    generated_at=now_iso())
    data.read_at = data.generated_at
    if not session.store.bucket_exists():
        data.warnings.append(f"the registry bucket s3://{session.bucket} does not exist yet; "
                             "run `mlops deploy`")
        return data
    data.models = _models(session)
    data.endpoints = _endpoints(session)
    store = _store(session)
    data.monitors = [monitor_view(store, name, mon.endpoint, mon.schedule)
                     for name, mon in sorted(session.ws.loaded.config.monitors.items())]
    data.audit = audit_records(session.target.conn.client("s3"), session.bucket,
                               previous.audit if previous else [])
    return data


def _store(session: Session) -> Any:
    from framework.monitoring.store import S3Store

    return S3Store(session.target.conn.client("s3"), session.bucket)


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
            parts = card.sections(
                meta, intended_use=declared.intended_use if declared else "",
                limitations=list(declared.limitations) if declared else [],
                chain=lineage(reg, name, version), approvals=approvals[version],
                aliases=aliases)
            page = card.to_html(f"{name}@{version}", parts)
            found = BODY.search(page)
            cards[version] = found.group(1).strip() if found else ""
        out.append(ModelView(name=name, versions=metas, aliases=aliases,
                             history=reg.history(name), approvals=approvals, cards=cards,
                             declared=declared.version if declared else None))
    return out


def rollout_view(rec: RolloutRecord) -> RolloutView:
    return RolloutView(endpoint=rec.endpoint, strategy=rec.strategy, status=rec.status,
                       stable=rec.stable, candidate=rec.candidate, stable_model=rec.stable_model,
                       candidate_model=rec.candidate_model, steps=list(rec.steps),
                       step=rec.step, weight=rec.weight, started_at=rec.started_at,
                       updated_at=rec.updated_at, reason=rec.reason, history=list(rec.history))


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
            lambda_version=info.version if info else None,
            rollout=rollout_view(rec) if rec is not None else None))
    return out


def published(session: Session) -> SiteData | None:
    """The snapshot last published for the session's stage, if it can be read."""
    base = site.prefix(session.ws.project, session.ws.stage)
    raw = _store(session).get(base + site.SNAPSHOT)
    try:
        return SiteData.from_snapshot(raw) if raw is not None else None
    except ValueError:
        return None


def publish(session: Session, data: SiteData) -> str:
    """Write the page and its snapshot into the registry bucket; the page's key."""
    base = site.prefix(session.ws.project, session.ws.stage)
    return site.publish(_store(session), base, render_page(data), data.snapshot())


def after_deploy(session: Session) -> None:
    """Rebuild and publish the stage's page at the end of a deploy. Never raises: a deploy
    that applied does not fail for its dashboard (a warning says why it was not rebuilt)."""
    try:
        data = collect(session, published(session))
        data.built_by = "mlops deploy"
        publish(session, data)
    except Exception as e:
        session.warnings.append(f"the dashboard was not rebuilt ({type(e).__name__}: {e}); "
                                "`mlops dashboard --publish` tries again")
