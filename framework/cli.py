"""The ``mlops`` command line. Thin: parsing and printing over ``framework.workflow``.

User-facing errors (``MlopsError``) print without a traceback and exit with their code (2 for
bad input); ``--debug`` shows the traceback. Anything else is a bug: it prints as one
``internal error`` line with a hint and exits 1 (``--debug`` shows its traceback too).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from framework.cli_common import (
    DEFAULT_FILE,
    FileOpt,
    Output,
    OutputOpt,
    StageOpt,
    err,
    open_stage,
    out,
    print_json,
    show_progress,
    workspace,
)
from framework.cli_delivery import rollout_app
from framework.cli_delivery import test as gate_test
from framework.cli_models import build as build_cmd
from framework.cli_models import models_app
from framework.cli_monitor import mail_app, monitor_app
from framework.cli_retrain import ci_app
from framework.cli_retrain import retrain as retrain_cmd
from framework.errors import ConfigError, MlopsError, Problem

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deploy ML models to monitored HTTP endpoints from one mlops.yaml.")
local_app = typer.Typer(no_args_is_help=True, help="The embedded local AWS (moto + data plane).")
app.add_typer(local_app, name="local")
app.add_typer(models_app, name="models")
app.add_typer(monitor_app, name="monitor")
app.add_typer(mail_app, name="mail")
app.add_typer(rollout_app, name="rollout")
app.add_typer(ci_app, name="ci")
app.command("test")(gate_test)
app.command("retrain")(retrain_cmd)
app.command("build")(build_cmd)



def _version(value: bool) -> None:
    if value:
        from framework import __version__

        out.print(f"mlops {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Deploy ML models to monitored HTTP endpoints from one mlops.yaml."""


if TYPE_CHECKING:  # the planner loads the compiler: imported where used, not for --help
    from framework.plan.planner import Action, Plan

AllowDowngradeOpt = Annotated[bool, typer.Option(
    help="Deploy a declared model version below the one the stage runs (refused otherwise).")]
UndoRollbackOpt = Annotated[bool, typer.Option(
    help="Move endpoints a monitor rolled back to the version the state records (a deploy "
         "keeps a rollback otherwise).")]
ParallelismOpt = Annotated[int, typer.Option(
    min=1, help="Changes applied at once, those that do not depend on each other (1: one by "
    "one, in the plan's order).")]
OP_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red",
            "no-op": "dim", "retire (kept in registry)": "cyan"}  # by Plan.label


def _print_warnings(session: Any) -> None:
    # The provider's: what a person must still do (e.g. click an SES verification link).
    for warning in dict.fromkeys([*session.warnings, *session.provider.warnings]):
        err.print(f"[yellow]warning:[/yellow] {warning}")


def print_plan(plan: Plan, *, show_noop: bool = False) -> None:
    table = Table(title=f"Plan for {plan.project}/{plan.stage} on {plan.target} "
                        f"({plan.region}, account {plan.account_id})", title_justify="left")
    table.add_column("action")
    table.add_column("resource")
    table.add_column("kind", style="dim")
    table.add_column("reason")
    for action in plan.actions:
        if action.op.value == "no-op" and not show_noop:
            continue
        label = plan.label(action)
        style = OP_STYLE[label]
        table.add_row(f"[{style}]{label}[/{style}]", action.id, action.kind, action.reason)
    if plan.changes or show_noop:
        out.print(table)
    out.print(plan.summary())
    for hint in plan.hints:
        out.print(f"[yellow]hint:[/yellow] {hint}")


def _progress(action: Action, phase: str) -> None:
    style = OP_STYLE[action.op.value]
    if phase == "done":
        done = "retire" if action.retires else action.op.value  # kept in the registry
        out.print(f"  [{style}]{done:>7}[/{style}] {action.id}")
    elif phase == "failed":
        out.print(f"  [red]{'failed':>7}[/red] {action.op.value} {action.id}")


def _print_endpoints(session: Any, state: Any) -> None:
    from framework.workflow import endpoints

    for info in endpoints(session, state, live=True):
        model = f" ({info.model})" if info.model else ""
        shares = "".join(f" + {r['weight']:.0%} on version {r['version']}"
                         + (f" ({r['model']})" if r["model"] else "") for r in info.routing)
        out.print(f"endpoint [bold]{info.name}[/bold] ({info.route}, version "
                  f"{info.version}{model}{shares}): {info.url}")
        if info.note:
            out.print(f"  [yellow]{info.note}[/yellow]")


# -- commands -------------------------------------------------------------------------


@app.command()
def validate(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Check mlops.yaml and the model artifacts it names; report every problem at once."""
    from framework.package import describe_artifacts

    ws = workspace(file, stage)
    describe_artifacts(ws.loaded.config, ws.root)
    cfg = ws.loaded.config
    out.print(f"[green]ok[/green] {ws.loaded.path.name}: project {cfg.project}, stage "
              f"{ws.stage} → {ws.loaded.target.value} ({ws.loaded.region}); "
              f"{len(cfg.models)} model(s), {len(cfg.endpoints)} endpoint(s), "
              f"{len(cfg.monitors)} monitor(s)")
    for warning in ws.loaded.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")


@app.command()
def schema(output: Annotated[Path, typer.Option("--output", "-o")] = Path("mlops.schema.json"),
           ) -> None:
    """Write the JSON Schema of mlops.yaml (editors use it for completion and inline errors)."""
    from framework.config.schema import write_schema

    write_schema(output)
    out.print(f"wrote {output}")


@app.command("plan")
def plan_cmd(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
             output: Annotated[str | None, typer.Option(
                 "--output", "-o", help="json: print the plan as JSON; table: the default; "
                                        "any other value: save the plan to that file, to "
                                        "apply later.")]
             = None,
             destroy: Annotated[bool, typer.Option(help="Plan the removal of everything.")]
             = False,
             all_: Annotated[bool, typer.Option("--all", help="Show unchanged resources too.")]
             = False,
             markdown: Annotated[Path | None, typer.Option(
                 help="Also write the plan as a Markdown table (a pull-request comment).")]
             = None, allow_downgrade: AllowDowngradeOpt = False,
             undo_rollback: UndoRollbackOpt = False) -> None:
    """Show what a deploy would change, and why."""
    from framework.workflow import plan

    as_json = output == Output.json.value
    session = open_stage(file, stage, announce=not as_json)
    the_plan = plan(session, destroy=destroy, allow_downgrade=allow_downgrade,
                    undo_rollback=undo_rollback)
    if as_json:  # the document `-o FILE` saves (so `mlops deploy` applies it), with counts
        import json

        print_json({**json.loads(the_plan.to_json()), "counts": the_plan.counts()})
    else:
        print_plan(the_plan, show_noop=all_)
    _print_warnings(session)
    if markdown is not None:
        from framework.ci import plan_markdown

        markdown.write_text(plan_markdown(the_plan))
    if output is not None and output not in {o.value for o in Output}:
        Path(output).write_text(the_plan.to_json())
        out.print(f"saved to {output}; apply it with `mlops deploy {output}`")


@app.command()
def deploy(saved: Annotated[Path | None, typer.Argument(help="A plan saved by `mlops plan -o`.")]
           = None,
           file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           wait: Annotated[bool, typer.Option(
               help="Drive rollouts to the end (--no-wait: start them and return).")] = True,
           allow_downgrade: AllowDowngradeOpt = False,
           parallelism: ParallelismOpt = 10,
           undo_rollback: UndoRollbackOpt = False) -> None:
    """Apply the difference between mlops.yaml and what is deployed: new model versions pass
    their gates first, then take the traffic as their endpoint's rollout says."""
    from framework.cli_delivery import drive_rollouts, print_gates
    from framework.gates import GateFailedError
    from framework.workflow import (
        apply,
        check_gates,
        check_integrity,
        check_plan_matches,
        plan,
    )

    session = open_stage(file, stage)
    started = time.perf_counter()
    if saved is not None:
        if not saved.exists():
            raise ConfigError([Problem(where=str(saved), what="no such file",
                                       hint="save a plan with `mlops plan -o plan.json`")],
                              source=str(saved))
        from framework.plan.planner import Plan

        the_plan = Plan.from_json(saved.read_text(), source=str(saved))
        check_plan_matches(session, the_plan, str(saved))
        check_integrity(session, ((a.kind, a.props) for a in the_plan.actions
                                  if a.props is not None), session.store.load())
    else:
        the_plan = plan(session, allow_downgrade=allow_downgrade, undo_rollback=undo_rollback)
    print_plan(the_plan)
    try:
        print_gates(check_gates(session, the_plan))
    except GateFailedError as exc:
        print_gates({exc.model: exc.results})
        raise
    state = None
    try:
        state = apply(session, the_plan, on_progress=_progress, saved=saved is not None,
                      parallelism=parallelism)
        state = drive_rollouts(session, wait=wait) or state
        if the_plan.changes:  # what serves once the rollouts ended (framework.drift)
            from framework.drift import record_serving

            session.warnings.extend(record_serving(session, state))
    finally:
        if state is not None and the_plan.changes:  # applied: rollouts as they ended too
            from framework.dashboard.collect import after_deploy

            after_deploy(session)  # the stage's dashboard page; never fails the deploy
        _print_warnings(session)
    applied = len(the_plan.changes)
    took = time.perf_counter() - started
    if applied:
        out.print(f"[green]deployed[/green] {applied} change(s) in {took:.1f}s")
    else:
        out.print(f"[green]no changes[/green]: nothing applied, nothing uploaded ({took:.1f}s)")
    _print_endpoints(session, state)
    _write_lock(session, state)


def _write_lock(session: Any, state: Any) -> None:
    from framework import lockfile
    from framework.workflow import lock_entry

    path = session.ws.root / "mlops.lock"
    lockfile.write(path, session.ws.project, session.ws.stage, lock_entry(session, state))
    err.print(f"[dim]recorded what {session.ws.project}/{session.ws.stage} runs in "
              f"{path.name}[/dim]")


@app.command()
def lock(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
         check: Annotated[bool, typer.Option(
             help="Fail if the working tree would deploy something else than the lock.")]
         = False) -> None:
    """Write mlops.lock for what the stage runs, or check the working tree against it."""
    from framework import lockfile
    from framework.workflow import check_locked_artifacts, planned_lock_entry

    session = open_stage(file, stage)
    if not check:
        _write_lock(session, session.store.load())
        return
    ws = session.ws
    locked = lockfile.entry(ws.root / "mlops.lock", ws.project, ws.stage)
    if locked is None:
        raise MlopsError(f"mlops.lock has no entry for stage '{ws.stage}' of project "
                         f"'{ws.project}'", hint="deploy it, or run `mlops lock`")
    check_locked_artifacts(session, locked)
    diffs = lockfile.differences(locked, planned_lock_entry(session))
    if diffs:
        raise MlopsError("the working tree differs from mlops.lock: " + "; ".join(diffs),
                         hint="deploy it (which rewrites the lock), or revert the change")
    out.print(f"[green]ok[/green] the working tree deploys exactly what mlops.lock records "
              f"for {ws.project}/{ws.stage}")


@app.command()
def destroy(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
            yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
            parallelism: ParallelismOpt = 10) -> None:
    """Remove everything the project created on the stage's target, registry included."""
    from framework.workflow import apply, plan

    session = open_stage(file, stage)
    the_plan = plan(session, destroy=True)
    print_plan(the_plan)
    if not the_plan.changes:
        out.print("nothing to destroy")
        return
    if not yes and not typer.confirm(f"Destroy {len(the_plan.changes)} resource(s)?"):
        raise typer.Exit(1)
    state = apply(session, the_plan, command="mlops destroy", on_progress=_progress,
                  parallelism=parallelism)
    _print_warnings(session)
    out.print(f"[red]destroyed[/red] {session.ws.project}/{session.ws.stage}; state has "
              f"{len(state.resources)} resource(s) (destroyed at {state.destroyed_at})")


@app.command()
def synth(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
          output: Annotated[Path | None, typer.Option(
              "--output", "-o", help="Default: infra/cloudformation/PROJECT-STAGE.json")]
          = None) -> None:
    """Export the stage's resources as a CloudFormation template (no AWS call)."""
    from framework.synth import to_json, to_sam
    from framework.workflow import synth as synthesize

    ws = workspace(file, stage)
    template = synthesize(ws)
    target = output or ws.root / "infra" / "cloudformation" / f"{ws.project}-{ws.stage}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_json(template))
    sam = target.with_name(target.stem + ".sam.json")
    sam.write_text(to_json(to_sam(template)))
    out.print(f"wrote {sam} (the same stack as a SAM template)")
    out.print(f"wrote {target} ({len(template['Resources'])} resources); the registry bucket "
              "and its objects listed under Metadata.Mlops::Registry must exist first "
              "(`mlops deploy` creates them)")


@app.command()
def status(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           output: OutputOpt = Output.table) -> None:
    """What is deployed on the stage, and where its endpoints answer."""
    from dataclasses import asdict

    from framework.workflow import endpoints

    session = open_stage(file, stage, read=True, announce=output is Output.table)
    state = session.store.load()
    if output is Output.json:
        print_json({"project": session.ws.project, "stage": session.ws.stage,
                    "target": session.target.kind.value, "region": session.target.region,
                    "account_id": session.target.account_id,
                    "registry": f"s3://{session.bucket}", "state_serial": state.serial,
                    "resources": len(state.resources), "destroyed_at": state.destroyed_at,
                    "endpoints": [asdict(e) for e in endpoints(session, state, live=True)]})
        return
    out.print(f"{session.ws.project}/{session.ws.stage} on {session.target.kind.value}: "
              f"state #{state.serial}, {len(state.resources)} resource(s), registry "
              f"s3://{session.bucket}")
    if state.destroyed_at:
        out.print(f"destroyed at {state.destroyed_at}")
    _print_endpoints(session, state)


@app.command()
def unlock(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Remove the stage's deploy lock (after a deploy died on another machine)."""
    session = open_stage(file, stage)
    holder = session.store.holder()
    if holder is None:
        out.print("not locked")
        return
    session.store.release(force=True)
    out.print(f"removed the lock held by {holder.get('actor')} (pid {holder.get('pid')} on "
              f"{holder.get('host')} since {holder.get('since')})")


@app.command()
def audit(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
          limit: Annotated[int, typer.Option(help="Show the newest N records.")] = 50,
          model: Annotated[str | None, typer.Option(help="Only changes to this model.")] = None,
          since: Annotated[str | None, typer.Option(
              help="Only changes at or after this UTC time, e.g. 2026-03-01T14:00.")] = None,
          verify: Annotated[bool, typer.Option(
              "--verify", help="Check the trail's chains in the registry instead: exit 7 "
              "when a record was removed, altered or hidden.")] = False,
          output: OutputOpt = Output.table) -> None:
    """Show the audit trail (registry and deploys): who changed what, when, before → after."""
    from framework.registry.audit_query import read_lines, read_registry, select
    from framework.registry.service import parse_time

    if verify:
        from framework.cli_models import verify_audit

        verify_audit(file, stage, output)
        return
    ws = workspace(file, stage)
    when = parse_time(since) if since else None
    source = "the registry"
    try:
        from framework.workflow import open_session

        session = open_session(ws, start_local=False)
        records = read_registry(session.target.conn.client("s3"), session.bucket, when)
        if not records:
            raise MlopsError("the registry holds no audit records")
    except MlopsError:
        source = f"the local mirror {ws.home / 'audit.jsonl'}"
        records = read_lines(ws.home / "audit.jsonl")
    records = select(records, model=model, since=when)
    if output is Output.json:
        print_json({"source": source, "records": records[-limit:]})
        return
    table = Table(title=f"audit ({source})", title_justify="left")
    for col in ("time", "actor", "action", "resource", "before → after", "outcome"):
        table.add_column(col)
    for rec in records[-limit:]:
        colour = "green" if rec.get("outcome") == "succeeded" else "red"
        change = ""
        if rec.get("kind") == "model_registry":
            change = f"{_brief(rec.get('before'))} → {_brief(rec.get('after'))}"
        table.add_row(str(rec.get("time", "")), rec.get("actor", ""), rec.get("action", ""),
                      rec.get("resource", ""), change,
                      f"[{colour}]{rec.get('outcome', '')}[/{colour}]")
    out.print(table)


def _brief(value: Any) -> str:
    if not isinstance(value, dict):
        return "—" if value is None else str(value)
    return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "—"


# -- local AWS ------------------------------------------------------------------------


def _local_home(file: Path) -> Path:
    return file.resolve().parent / ".mlops" / "local"


@local_app.command("start")
def local_start(file: FileOpt = DEFAULT_FILE) -> None:
    """Start the embedded local AWS in the background (state persists across restarts)."""
    from framework import local

    aws = local.start(_local_home(file))
    out.print(f"local AWS running (pid {aws.pid}): control plane {aws.control_url}, "
              f"gateway {aws.gateway_url}, data in {aws.home}")


@local_app.command("stop")
def local_stop(file: FileOpt = DEFAULT_FILE) -> None:
    """Stop the embedded local AWS; its state is kept for the next start."""
    from framework import local

    out.print("stopped" if local.stop(_local_home(file)) else "not running")


@local_app.command("status")
def local_status(file: FileOpt = DEFAULT_FILE) -> None:
    """Whether the embedded local AWS runs, and where."""
    from framework import local

    aws = local.status(_local_home(file))
    if aws is None:
        raise MlopsError("the local AWS is not running", where=str(_local_home(file)),
                         hint="start it with `mlops local start` (what was deployed is kept)")
    out.print(f"running (pid {aws.pid}): control plane {aws.control_url}, gateway "
              f"{aws.gateway_url}, data in {aws.home}")


from framework.cli_dashboard import register as _register_dashboard  # noqa: E402
from framework.cli_data import register as _register_data  # noqa: E402
from framework.cli_init import register as _register_init  # noqa: E402
from framework.cli_serve import register as _register_serving  # noqa: E402

_register_serving(app)
_register_dashboard(app)
_register_init(app)
_register_data(app)


INTERNAL_ERROR = 1  # an error the command did not expect (README: exit codes)


def main() -> None:
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    show_progress()
    try:
        app()
    except MlopsError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/red] {exc.render()}")
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, or an error not yet explained: one line, not a traceback
        if debug:
            raise
        from rich.markup import escape

        from framework.workflow import explain

        known = explain(exc)
        if known is not None:
            err.print(f"[red]error:[/red] {escape(known.render())}")
            sys.exit(known.exit_code)
        err.print(f"[red]error:[/red] internal error: {type(exc).__name__}: "
                  f"{escape(str(exc))} (report this; --debug shows the traceback)\n"
                  "  hint: run the command again with --debug and report what it prints")
        sys.exit(INTERNAL_ERROR)


if __name__ == "__main__":
    main()
