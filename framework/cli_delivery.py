"""CLI for delivering model versions: ``mlops test`` (gates) and ``mlops rollout``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from framework.cli_common import (
    DEFAULT_FILE,
    FileOpt,
    Output,
    OutputOpt,
    StageOpt,
    open_stage,
    out,
    print_json,
)
from framework.errors import MlopsError

if TYPE_CHECKING:  # imported where used: `mlops --help` does not load the compiler
    from framework.rollout.record import RolloutRecord

rollout_app = typer.Typer(no_args_is_help=True,
                          help="Progressive rollouts of new model versions on endpoints.")



def print_gates(results: Mapping[str, Sequence[Any]]) -> None:
    for model, rows in results.items():
        if not rows:
            continue
        table = Table(title=f"gates of {model}", title_justify="left")
        versus = any(getattr(r, "relative", False) for r in rows)  # champion-relative gates
        for col in ("gate", "expected", "measured", *(("champion", "bound") if versus else ()),
                    "result"):
            table.add_column(col)
        for r in rows:
            mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
            measured = f"{r.measured:.4g}" if isinstance(r.measured, float) else str(r.measured)
            cells = [r.gate, r.expected, measured]
            if versus:
                champion = (f"{_figure(r.champion) or '?'} ({r.champion_version})"
                            if r.champion_version else r.no_champion) if r.relative else ""
                cells += [champion, _figure(r.bound)]
            table.add_row(*cells, mark)
        out.print(table)


def _figure(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def _describe(rec: RolloutRecord) -> str:
    from framework.rollout.record import COMPLETED, ROLLED_BACK, RUNNING, STOPPED

    style = {RUNNING: "yellow", COMPLETED: "green", ROLLED_BACK: "red",
             STOPPED: "dim"}.get(rec.status, "")
    model = rec.candidate_model if rec.serving == rec.candidate else rec.stable_model
    where = (f"{rec.weight}% on {rec.candidate_model}" if rec.status == RUNNING
             else f"serving {model} (Lambda version {rec.serving})")
    text = (f"rollout of [bold]{rec.endpoint}[/bold] ({rec.strategy}, "
            f"{rec.stable_model} → {rec.candidate_model}, CodeDeploy {rec.deployment_id}): "
            f"[{style}]{rec.status}[/{style}], {where}")
    if rec.reason and rec.status not in (RUNNING, COMPLETED):
        text += f" — {rec.reason}"
    return text


def _unjudged(rec: RolloutRecord) -> list[str]:
    """A completed step-by-step rollout whose candidate had too few requests for its alarms
    to judge it (``watch.min_requests``), and why."""
    if rec.judged.get("judged") is not False:
        return []
    steps = ", ".join(f"{s['weight']}%" for s in rec.steps[:-1])
    return [f"the {steps} step{'s' if len(rec.steps) > 2 else ''} advanced on time without "
            f"being judged: {rec.judged.get('reason', '')}"]


def _step(rec: RolloutRecord) -> str:
    """What just happened, in one line."""
    from framework.rollout.record import RUNNING

    last = rec.history[-1] if rec.history else {}
    if rec.status == RUNNING and last.get("event") == "AllowTraffic":
        return f"{rec.weight}% on {rec.candidate_model}"
    if rec.status == RUNNING and last:
        return f"{last['event']}: {last['status']}" + (
            f" ({last['reason']})" if last.get("reason") else "")
    return _describe(rec)


def _event(rec: RolloutRecord, what: str) -> None:
    out.print(f"  {time.strftime('%H:%M:%S')} {rec.endpoint}: {_step(rec)}")


def drive_rollouts(session: Any, *, wait: bool) -> Any:
    """After an apply: the deployments it started, waited for (each traffic step printed as
    CodeDeploy makes it) unless ``wait`` is false; their outcome recorded in the deploy state.
    Returns the new state, or None when no deployment is under way."""
    from framework.rollout.deployments import reconcile, unrecorded, watch
    from framework.rollout.record import ROLLED_BACK, STOPPED
    from framework.rollout.session import recipients, records

    pending = unrecorded(session)  # started, their end not in the deploy state yet
    if not pending:
        return reconcile(session, command="mlops deploy")
    for rec in records(session):
        if rec.endpoint in pending:
            out.print(f"{rec.endpoint}: CodeDeploy deployment {rec.deployment_id} — "
                      f"{rec.description or rec.strategy}")
    if not wait:
        out.print("the deployments run in CodeDeploy: `mlops rollout status` follows them, "
                  "`mlops rollout abort ENDPOINT` rolls one back")
        return reconcile(session, command="mlops deploy")
    done = [_judge(session, rec) for rec in watch(session, on_event=_event, endpoints=pending)]
    for rec in done:
        out.print(_describe(rec))
        for line in _unjudged(rec):
            out.print(f"  [yellow]warning:[/yellow] {line}")
    state = reconcile(session, command="mlops deploy")
    back = [r for r in done if r.status in (ROLLED_BACK, STOPPED)]
    for rec in back:  # the stage's rollback notifier e-mails it, on CodeDeploy's own event
        if rec.status == ROLLED_BACK:
            _, to = recipients(session.ws.loaded.config.monitors, rec.endpoint)
            out.print(f"  the rollback is e-mailed to {', '.join(to)} by the stage's notifier"
                      if to else f"  [yellow]warning:[/yellow] no monitor of {rec.endpoint} "
                      "names e-mail recipients: no one is told of its rollback")
    if back:
        raise RolledBackError(
            "; ".join(f"{r.endpoint}: {r.candidate_model} rolled back to {r.stable_model} "
                      f"({r.reason})" for r in back),
            hint="the previous version serves all traffic; fix the model and bump its version")
    return state


def _judge(session: Any, rec: RolloutRecord) -> RolloutRecord:
    """A completed step-by-step rollout judged on the candidate's requests
    (``watch.min_requests``) once CloudWatch's count of them is final — waited for — and its
    verdict audited, so the deploy and the audit say whether a step advanced unjudged."""
    from framework.progress import say
    from framework.rollout.deployments import judged, metrics_lag
    from framework.rollout.record import COMPLETED

    if rec.status != COMPLETED or rec.judged.get("judged") is not None:
        return rec
    ep = session.ws.loaded.config.endpoints.get(rec.endpoint)
    if ep is None or ep.rollout is None or not ep.rollout.watch.min_requests:
        return rec  # nothing to count: every step is judged by its alarms
    wait = rec.updated_at + metrics_lag(session) - time.time()
    if wait > 0:
        say(f"waiting {wait:.0f} s for CloudWatch's count of the requests {rec.candidate_model} "
            f"answered (watch.min_requests {ep.rollout.watch.min_requests})")
        time.sleep(wait)
    rec = judged(session, rec)
    if rec.judged.get("judged") is not None:
        session.audit.record(
            actor=session.target.actor, command="mlops deploy", stage=session.ws.stage,
            action="judge", resource=f"endpoint.{rec.endpoint}", kind="rollout",
            outcome="judged" if rec.judged["judged"] else "unjudged",
            after={"deployment": rec.deployment_id, "model": rec.candidate_model,
                   **rec.judged, "unjudged": _unjudged(rec)})
    return rec


class RolledBackError(MlopsError):
    """A rollout started by this command was rolled back."""

    exit_code = 6


@rollout_app.command("status")
def status(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           output: OutputOpt = Output.table) -> None:
    """Each endpoint's latest rollout, as CodeDeploy reports it: strategy, traffic share,
    lifecycle events, the pre-traffic check's verdict."""
    from framework.rollout.deployments import judged
    from framework.rollout.record import COMPLETED
    from framework.rollout.session import records

    session = open_stage(file, stage, announce=False, read=True)
    found = [judged(session, r) if r.status == COMPLETED else r for r in records(session)]
    shadows = _shadows(session)
    if output is Output.json:  # each endpoint's rollout, as CodeDeploy reports it
        print_json({"rollouts": [{**rec.to_dict(), "unjudged": _unjudged(rec)}
                                 for rec in found],
                    "shadows": [s.to_dict() for s in shadows]})
        return
    for running in shadows:
        out.print(running.describe())
    if not found:
        out.print("no rollouts yet")
    for rec in found:
        out.print(_describe(rec))
        if rec.description:
            out.print(f"    {rec.description}")
        for h in rec.history:
            detail = f" — {h['reason']}" if h.get("reason") else ""
            out.print(f"    {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(h['time']))}Z "
                      f"{h['event']}: {h['status']}{detail}")
        verdict = rec.pretraffic
        if verdict:
            out.print(f"    pre-traffic check: {verdict.get('status')} — {verdict.get('reason')}")
        if rec.judged.get("judged"):
            out.print(f"    judged on {rec.judged['requests']} requests of the candidate "
                      f"(min_requests {rec.judged['min_requests']})")
        elif rec.judged and rec.judged.get("judged") is None:
            out.print(f"    [dim]requests judged: {rec.judged['reason']}[/dim]")
        for line in _unjudged(rec):
            out.print(f"  [yellow]warning:[/yellow] {line}")


def _shadows(session: Any) -> list[Any]:
    """Endpoints whose shadow alias is up, with how the candidate's answers to the copies
    compared (``framework.shadow``); none when nothing is deployed."""
    from framework.shadow import shadowing

    if not session.store.bucket_exists():
        return []
    return shadowing(session)


@rollout_app.command("promote")
def promote(endpoint: str, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Give all traffic to the candidate now (the deployment is stopped without rollback)."""
    from framework.rollout.deployments import promote as promote_now
    from framework.rollout.deployments import reconcile

    session = open_stage(file, stage, announce=False)
    rec = promote_now(session, endpoint)
    reconcile(session)
    out.print(_describe(rec))


@rollout_app.command("abort")
def abort(endpoint: str, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
          reason: Annotated[str, typer.Option(help="Recorded in the audit log.")]
          = "aborted by hand") -> None:
    """Stop the endpoint's deployment and return all traffic to the version that served
    before (StopDeployment with automatic rollback)."""
    from framework.rollout.deployments import abort as abort_now
    from framework.rollout.deployments import reconcile

    session = open_stage(file, stage, announce=False)
    rec = abort_now(session, endpoint)
    from framework import shadow

    shadow.stop(session.target.conn.client("lambda"), rec.function)  # a shadow step ends too
    session.audit.record(actor=session.target.actor, command="mlops rollout abort",
                         stage=session.ws.stage, action="rollout aborted",
                         resource=f"endpoint.{endpoint}", kind="rollout",
                         outcome="succeeded", reason=reason,
                         after={"deployment": rec.deployment_id, "status": rec.status})
    reconcile(session)
    out.print(_describe(rec) + f" — {reason}")


@rollout_app.command("resume")
def resume(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           wait: Annotated[bool, typer.Option(help="Wait for them to end.")] = True) -> None:
    """Follow the stage's deployments again (e.g. after the deploying process was killed:
    CodeDeploy went on without it) and record how they ended in the deploy state."""
    session = open_stage(file, stage, announce=False)
    state = drive_rollouts(session, wait=wait)
    if state is None:
        out.print("no running rollouts; the deploy state records what serves")


def test(models: Annotated[list[str] | None, typer.Argument(help="Models (default: all).")]
         = None, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
         offline: Annotated[bool, typer.Option(
             help="Do not compare with registered versions (no AWS call).")] = False,
         ) -> None:
    """Evaluate the models' gates: hold-out metrics, latency of the packaged handler, size,
    and contract compatibility with the newest registered version below."""
    from framework.gates import GateFailedError
    from framework.workflow import Workspace, open_session, previous_metadata, run_gates

    ws = Workspace.open(file, stage)
    session = None if offline else open_session(ws)
    names = models or list(ws.loaded.config.models)
    failed = []
    for name in names:
        model = ws.loaded.config.models[name]
        results = run_gates(ws, name, previous_metadata(session, name, model.version), session)
        print_gates({f"{name}@{model.version}": results})
        if not all(r.passed for r in results):
            failed.append(GateFailedError(name, model.version, results))
    if failed:
        raise failed[0]
    out.print(f"[green]all gates passed[/green] for {', '.join(names)}")
