"""CLI for delivering model versions: ``mlops test`` (gates) and ``mlops rollout``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from framework.cli_common import DEFAULT_FILE, FileOpt, StageOpt, open_stage, out
from framework.errors import MlopsError
from framework.rollout.record import COMPLETED, ROLLED_BACK, RUNNING, RolloutRecord

rollout_app = typer.Typer(no_args_is_help=True,
                          help="Progressive rollouts of new model versions on endpoints.")

STATUS_STYLE = {RUNNING: "yellow", COMPLETED: "green", ROLLED_BACK: "red", "aborted": "dim"}


def print_gates(results: Mapping[str, Sequence[Any]]) -> None:
    for model, rows in results.items():
        if not rows:
            continue
        table = Table(title=f"gates of {model}", title_justify="left")
        for col in ("gate", "expected", "measured", "result"):
            table.add_column(col)
        for r in rows:
            mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
            measured = f"{r.measured:.4g}" if isinstance(r.measured, float) else str(r.measured)
            table.add_row(r.gate, r.expected, measured, mark)
        out.print(table)


def _describe(rec: RolloutRecord) -> str:
    style = STATUS_STYLE.get(rec.status, "")
    model = rec.candidate_model if rec.serving == rec.candidate else rec.stable_model
    where = (f"{rec.weight}% on {rec.candidate_model}" if rec.status == RUNNING
             else f"serving {model} (Lambda version {rec.serving})")
    text = (f"rollout of [bold]{rec.endpoint}[/bold] ({rec.strategy}, "
            f"{rec.stable_model} → {rec.candidate_model}): [{style}]{rec.status}[/{style}], "
            f"{where}")
    if rec.reason and rec.status != RUNNING:
        text += f" — {rec.reason}"
    return text


def _event(rec: RolloutRecord, what: str) -> None:
    out.print(f"  {time.strftime('%H:%M:%S')} {_describe(rec)}")


def drive_rollouts(session: Any, *, wait: bool) -> Any:
    """After an apply: run the stage's rollouts (printing each step); the new state."""
    from framework.rollout.session import drive, records

    running = [r for r in records(session) if r.status == RUNNING]
    if not running:
        return None
    for rec in running:
        out.print(_describe(rec))
    done = drive(session, wait=wait, on_event=_event)
    for rec in done:
        if rec.endpoint in {r.endpoint for r in running}:
            out.print(_describe(rec))
    if not wait and any(r.status == RUNNING for r in done):
        out.print("rollouts keep running: `mlops rollout status`, `mlops rollout resume`")
    back = [r for r in done if r.status == ROLLED_BACK and r.endpoint in
            {x.endpoint for x in running}]
    if back:
        raise RolledBackError(
            "; ".join(f"{r.endpoint}: {r.candidate_model} rolled back to {r.stable_model} "
                      f"({r.reason})" for r in back),
            hint="the previous version serves all traffic; fix the model and bump its version")
    return session.store.load()


class RolledBackError(MlopsError):
    """A rollout started by this command was rolled back."""

    exit_code = 6




@rollout_app.command("status")
def status(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Each endpoint's latest rollout: strategy, step, traffic share, verdicts."""
    from framework.rollout.session import records

    session = open_stage(file, stage, announce=False)
    found = records(session)
    if not found:
        out.print("no rollouts yet")
    for rec in found:
        out.print(_describe(rec))
        for h in rec.history[-6:]:
            detail = h.get("reason") or h.get("note") or ""
            out.print(f"    {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(h['time']))}Z "
                      f"{h['event']} (step {h['step']}) {detail}")


def _one(session: Any, endpoint: str) -> RolloutRecord:
    from framework.errors import ConfigError, Problem
    from framework.rollout.session import records

    for rec in records(session):
        if rec.endpoint == endpoint:
            return rec
    raise ConfigError([Problem(where=f"endpoints.{endpoint}", what="has no rollout",
                               hint="`mlops rollout status` lists the rollouts")],
                      source="rollout")


@rollout_app.command("promote")
def promote(endpoint: str, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Give all traffic to the candidate now."""
    from framework.rollout.session import driver, record_serving

    session = open_stage(file, stage, announce=False)
    rec = driver(session).promote(_one(session, endpoint))
    record_serving(session, [rec])
    out.print(_describe(rec))


@rollout_app.command("abort")
def abort(endpoint: str, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
          reason: Annotated[str, typer.Option(help="Recorded in the audit log.")]
          = "aborted by hand") -> None:
    """Return all traffic to the stable version now."""
    from framework.rollout.session import driver, record_serving

    session = open_stage(file, stage, announce=False)
    rec = driver(session).abort(_one(session, endpoint), reason)
    record_serving(session, [rec])
    out.print(_describe(rec))


@rollout_app.command("resume")
def resume(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           wait: Annotated[bool, typer.Option(help="Drive to the end.")] = True) -> None:
    """Pick up rollouts whose driver stopped (e.g. the deploying process was killed)."""
    session = open_stage(file, stage, announce=False)
    if drive_rollouts(session, wait=wait) is None:
        out.print("no running rollouts")


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
        results = run_gates(ws, name, previous_metadata(session, name, model.version))
        print_gates({f"{name}@{model.version}": results})
        if not all(r.passed for r in results):
            failed.append(GateFailedError(name, model.version, results))
    if failed:
        raise failed[0]
    out.print(f"[green]all gates passed[/green] for {', '.join(names)}")


def _params(pairs: list[str] | None) -> dict[str, str]:
    from framework.errors import ConfigError, Problem

    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError([Problem(where="--param", what=f"'{pair}' is not KEY=VALUE",
                                       hint="e.g. --param seed=7")], source="retrain")
        out[key] = value
    return out


def retrain(model: Annotated[str | None, typer.Argument(help="Model to retrain.")] = None,
            minor: Annotated[bool, typer.Option(help="Bump the minor version, not the patch.")]
            = False,
            param: Annotated[list[str] | None, typer.Option(
                help="Override a training parameter: KEY=VALUE (repeatable).")] = None,
            deploy: Annotated[bool, typer.Option(
                help="Deploy the new version at once (gates, then the endpoint's rollout).")]
            = False,
            pending: Annotated[bool, typer.Option(
                help="Handle the retrain requests monitors left in the registry.")] = False,
            file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Run a model's training entry point and make the result its next version."""
    from framework import retrain as rt
    from framework.errors import ConfigError, Problem

    home = file.resolve().parent / ".mlops"
    requests: list[tuple[str, dict[str, Any]]] = []
    session = None
    if pending:
        session = open_stage(file, stage, announce=False)
        s3 = session.target.conn.client("s3")
        requests = rt.pending(s3, session.bucket, model)
        if not requests:
            out.print("no pending retrain requests")
            return
        names = [str(body["model"]) for _, body in requests]
    elif model is None:
        raise ConfigError([Problem(where="retrain", what="name a model, or pass --pending",
                                   hint="e.g. mlops retrain diagnosis")], source="retrain")
    else:
        names = [model]
    for i, name in enumerate(dict.fromkeys(names)):
        done = rt.retrain(file, home, name, minor=minor, overrides=_params(param))
        out.print(f"[green]retrained[/green] {name}: {done.parent} → {done.version} "
                  f"(sha256 {done.sha256[:12]}…, metrics {done.metrics or 'not reported'}); "
                  f"mlops.yaml now declares {done.version}")
        if session is not None:
            for key, body in requests:
                if body.get("model") == name:
                    rt.mark_done(session.target.conn.client("s3"), session.bucket, key,
                                 {"version": done.version, "sha256": done.sha256,
                                  "request": body, "index": i})
    if deploy:
        from framework.cli import deploy as deploy_command

        deploy_command(None, file, stage, wait=True)
    else:
        out.print("next: `mlops deploy` runs the gates and the endpoint's rollout")


ci_app = typer.Typer(no_args_is_help=True, help="Continuous integration and delivery.")


@ci_app.command("init")
def ci_init(file: FileOpt = DEFAULT_FILE,
            stage: Annotated[str, typer.Option("--stage", "-s",
                                               help="Stage CI deploys.")] = "prod",
            branch: Annotated[str, typer.Option(help="Branch whose pushes deploy.")] = "main",
            force: Annotated[bool, typer.Option(help="Overwrite an existing workflow.")]
            = False) -> None:
    """Write .github/workflows/mlops.yml: validate → gates → plan on pull requests (the plan
    as a comment-ready Markdown artifact), deploy on the main branch, daily retraining."""
    from framework import ci
    from framework.workflow import Workspace

    ws = Workspace.open(file, stage)
    config = file.resolve().relative_to(ws.root).as_posix() if file.is_absolute() else str(file)
    text = ci.workflow(stage=ws.stage, region=ws.loaded.region, branch=branch, config=config)
    path = ci.write(ws.root, text, force=force)
    out.print(f"wrote {path}: set the repository variable AWS_DEPLOY_ROLE_ARN to a role "
              "GitHub's OIDC provider may assume (`mlops doctor` lists what it needs)")
