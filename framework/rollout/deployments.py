"""Rollouts from the command line: read, wait for, promote and abort the CodeDeploy
deployments the plan started, and record how they ended.

A deployment runs in CodeDeploy (on AWS, or the local AWS's engine) whatever happens to the
command that started it. These functions only read it (``GetDeployment``,
``GetDeploymentTarget``, the alias' routing, the pre-traffic hook's verdict in its log group,
the candidate's request count in CloudWatch) or ask CodeDeploy to act (``StopDeployment``);
what they learn reaches the deploy state through apply, as the plan's reconciliation
(``framework.plan.deployments.reconciled``): state keeps one writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from framework.config.models import Rollout
from framework.errors import ConfigError, MlopsError, Problem
from framework.rollout.record import COMPLETED, RUNNING, RolloutRecord
from framework.rollout.strategy import ALL_AT_ONCE, Shape, shape

if TYPE_CHECKING:
    from framework.plan.state import Entry, State
    from framework.workflow import Session

Event = Callable[[RolloutRecord, str], None]  # (record, what changed)
UNAVAILABLE_S = 120.0  # CodeDeploy unreadable this long: the command stops, the rollout runs
# CloudWatch has an EMF metric's minute some time after it ended: a count is final this long
# after the end (the local AWS puts a minute once it is over and late lines had time to come).
METRICS_LAG_S = 150.0
LOCAL_METRICS_LAG_S = 70.0


def metrics_lag(session: Session) -> float:
    """How long after a deployment ended CloudWatch's count of its requests is final."""
    return LOCAL_METRICS_LAG_S if session.target.kind.value == "local" else METRICS_LAG_S


class RolloutUnreadableError(MlopsError):
    """CodeDeploy did not answer: the deployment runs on, unseen by this command."""

    exit_code = 1


def _entries(session: Session, state: State) -> dict[str, Entry]:
    """endpoint → its latest deployment in the deploy state (declared endpoints only)."""
    out = {}
    for name in session.ws.loaded.config.endpoints:
        entry = state.resources.get(f"deployment.{name}")
        if entry is not None and entry.outputs.get("deployment_id"):
            out[name] = entry
    return out


def unrecorded(session: Session) -> set[str]:
    """Endpoints whose latest deployment's end the deploy state does not record yet (started
    by an apply, or under way when it was last read)."""
    from framework.rollout.record import ACTIVE

    return {e for e, entry in _entries(session, session.store.load()).items()
            if entry.outputs.get("status") in ACTIVE}


def _steps(session: Session, endpoint: str) -> tuple[str, list[int]]:
    ep = session.ws.loaded.config.endpoints[endpoint]
    got = shape(ep.rollout) if ep.rollout.strategy.value != "all_at_once" \
        else Shape(ALL_AT_ONCE)
    return ep.rollout.strategy.value, got.steps if isinstance(got, Shape) else [100]


def pretraffic_verdict(session: Session, endpoint: str, deployment_id: str,
                       ) -> dict[str, Any]:
    """The pre-traffic hook's verdict on a deployment, from its log group ({} if none)."""
    from framework.rollout.notice import pretraffic_verdict as verdict

    return verdict(session.target.conn.client("logs"), _hook_log_group(session, endpoint),
                   deployment_id)


def _hook_log_group(session: Session, endpoint: str) -> str:
    from framework.compile import names

    return names.log_group(names.function_name(session.ws.project, session.ws.stage,
                                               names.hook_unit(endpoint)))


def requests_seen(session: Session, function: str, model_version: str, start: float,
                  end: float) -> int | None:
    """Requests the candidate answered from ``start`` to ``end`` as CloudWatch counts them
    (the handler's EMF ``Requests``, per FunctionName and ModelVersion), or None unreadable."""
    from framework.rollout.pretraffic import requests_since

    try:
        return requests_since(session.target.conn.client("cloudwatch"), function,
                              model_version, datetime.fromtimestamp(start, UTC),
                              datetime.fromtimestamp(end, UTC))
    except (ClientError, BotoCoreError):
        return None


def read(session: Session, endpoint: str, entry: Entry) -> RolloutRecord:
    """The endpoint's deployment as CodeDeploy reports it now (``framework.rollout.notice``
    reads it, as the stage's rollback notifier does)."""
    from framework.rollout.notice import read_deployment

    conn = session.target.conn
    outputs, props = entry.outputs, entry.props
    strategy, weights = _steps(session, endpoint)
    return read_deployment(
        conn.client("codedeploy"), conn.client("lambda"), conn.client("logs"),
        str(outputs["deployment_id"]), stage=session.ws.stage, endpoint=endpoint,
        strategy=strategy, weights=weights,
        hook_log_group=_hook_log_group(session, endpoint) if props.get("hooks") else None,
        function=str(props["function_name"]), alias=str(props["alias"]),
        stable=str(outputs.get("current_version")), candidate=str(outputs.get("target_version")),
        description=str(props.get("description") or ""))


def judged(session: Session, rec: RolloutRecord) -> RolloutRecord:
    """``rec`` with the requests the candidate answered while traffic moved, and whether
    that was enough to judge it (``watch.min_requests``)."""
    allow = next((h for h in rec.history if h["event"] == "AllowTraffic"), None)
    ep = session.ws.loaded.config.endpoints.get(rec.endpoint)
    if allow is None or ep is None or len(rec.steps) < 2:
        return rec
    if time.time() - rec.updated_at < metrics_lag(session):
        return replace(rec, judged={"judged": None, "reason": "CloudWatch's count of the last "
                                    "minutes is still coming: `mlops rollout status` says later"})
    start = rec.started_at
    seen = requests_seen(session, rec.function, rec.candidate_model.rpartition(" ")[2], start,
                         rec.updated_at)
    need = ep.rollout.watch.min_requests
    what: dict[str, Any] = {"requests": seen, "min_requests": need,
                            "judged": seen is not None and seen >= need}
    if not what["judged"]:
        what["reason"] = (f"not enough traffic: {seen} of {need} requests needed to judge"
                          if seen is not None else "CloudWatch's request count unreadable")
    return replace(rec, judged=what)


def records(session: Session) -> list[RolloutRecord]:
    """The latest rollout of every declared endpoint that has one."""
    state = session.store.load()
    out = []
    for endpoint, entry in _entries(session, state).items():
        try:
            out.append(read(session, endpoint, entry))
        except ClientError as exc:
            if "DoesNotExist" not in str(exc):
                raise
    return out


def _signature(rec: RolloutRecord) -> tuple[Any, ...]:
    return (rec.status, rec.weight, tuple((h["event"], h["status"]) for h in rec.history))


def watch(session: Session, *, on_event: Event | None = None, poll: float = 1.0,
          max_seconds: float | None = None, endpoints: set[str] | None = None,
          ) -> list[RolloutRecord]:
    """Wait for the stage's running deployments to end (or ``max_seconds``), calling
    ``on_event`` for each change seen (a traffic step, a lifecycle event, the end)."""
    state = session.store.load()
    entries = {e: v for e, v in _entries(session, state).items()
               if endpoints is None or e in endpoints}
    seen: dict[str, tuple[Any, ...]] = {}
    started = time.monotonic()
    unreadable_since: float | None = None
    last: dict[str, RolloutRecord] = {}
    while True:
        try:
            now = {e: read(session, e, entry) for e, entry in entries.items()}
            unreadable_since = None
        except (ClientError, BotoCoreError) as exc:
            unreadable_since = unreadable_since or time.monotonic()
            if time.monotonic() - unreadable_since >= UNAVAILABLE_S:
                raise RolloutUnreadableError(
                    f"CodeDeploy could not be read for {UNAVAILABLE_S:g} s: {exc}",
                    hint="the deployment runs on in CodeDeploy: `mlops rollout status` "
                         "shows it, `mlops rollout abort ENDPOINT` stops it") from exc
            time.sleep(poll)
            continue
        for endpoint, rec in now.items():
            signature = _signature(rec)
            if seen.get(endpoint) != signature:
                first = endpoint not in seen
                seen[endpoint] = signature
                if on_event is not None and not first:
                    on_event(rec, "ended" if rec.status != RUNNING else "changed")
        last = now
        if all(r.status != RUNNING for r in now.values()):
            break
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            break
        time.sleep(poll)
    return [judged(session, r) if r.status == COMPLETED else r for r in last.values()]


def _one(session: Session, endpoint: str) -> tuple[RolloutRecord, Entry]:
    state = session.store.load()
    entry = _entries(session, state).get(endpoint)
    if entry is None:
        declared = ", ".join(session.ws.loaded.config.endpoints) or "none"
        raise ConfigError([Problem(
            where=f"endpoints.{endpoint}", what="has no rollout",
            hint=f"`mlops rollout status` lists the rollouts (endpoints: {declared})")],
            source="rollout")
    return read(session, endpoint, entry), entry


def abort(session: Session, endpoint: str) -> RolloutRecord:
    """Stop the endpoint's running deployment and roll it back (StopDeployment with
    autoRollbackEnabled): all traffic back on the version that served before."""
    rec, entry = _one(session, endpoint)
    if rec.status != RUNNING:
        return rec
    _stop(session, rec.deployment_id, rollback=True)
    return read(session, endpoint, entry)


def promote(session: Session, endpoint: str) -> RolloutRecord:
    """Give the candidate all traffic now. A Lambda deployment has no wait to skip
    (ContinueDeployment is for deployments waiting in Ready): the deployment is stopped
    without rollback and the alias pointed at the candidate alone."""
    rec, entry = _one(session, endpoint)
    if rec.status != RUNNING:
        return rec
    _stop(session, rec.deployment_id, rollback=False)
    session.target.conn.client("lambda").update_alias(
        FunctionName=rec.function, Name=rec.alias, FunctionVersion=rec.candidate,
        RoutingConfig={"AdditionalVersionWeights": {}})
    session.target.refresh_gateway()
    return read(session, endpoint, entry)


def _stop(session: Session, deployment_id: str, *, rollback: bool) -> None:
    cd = session.target.conn.client("codedeploy")
    try:
        cd.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=rollback)
    except ClientError as exc:
        if "DeploymentAlreadyCompleted" not in str(exc):
            raise
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["status"]
        if status in ("Succeeded", "Failed", "Stopped"):
            return
        time.sleep(0.5)
    raise RolloutUnreadableError(f"deployment {deployment_id} did not stop within 120 s",
                                 hint="`mlops rollout status` shows it; try again")


def reconcile(session: Session, *, command: str = "mlops rollout") -> State | None:
    """Record in the deploy state how the stage's deployments went and what its aliases
    serve (the plan's reconciliation, applied); None when nothing changed."""
    from framework.plan.deployments import reconciled
    from framework.plan.planner import Plan
    from framework.workflow import apply

    state = session.store.load()
    actions = reconciled(state, session.provider.observed(state))
    if not actions:
        return None
    t = session.target
    plan = Plan(project=state.project, stage=state.stage, target=t.kind.value,
                region=t.region, account_id=t.account_id, state_lineage=state.lineage,
                state_serial=state.serial,
                actions=tuple(actions[rid] for rid in sorted(actions, key=_order)))
    return apply(session, plan, command=command)


def _order(rid: str) -> tuple[int, str]:
    return (0 if rid.startswith("deployment.") else 1, rid)


def declared_rollout(session: Session, endpoint: str) -> Rollout | None:
    ep = session.ws.loaded.config.endpoints.get(endpoint)
    return None if ep is None else ep.rollout
