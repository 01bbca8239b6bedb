"""CLI for closing the loop: ``mlops retrain`` (train the next version, optionally on the
production data too, gate it, register it, answer the monitors' requests) and ``mlops ci
init`` (the GitHub Actions workflow that runs it daily and proposes the result)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli_common import DEFAULT_FILE, FileOpt, StageOpt, err, open_stage, out, workspace
from framework.errors import ConfigError, MlopsError, Problem

ci_app = typer.Typer(no_args_is_help=True, help="Continuous integration and delivery.")


def _params(pairs: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError([Problem(where="--param", what=f"'{pair}' is not KEY=VALUE",
                                       hint="e.g. --param seed=7")], source="retrain")
        found[key] = value
    return found


def _registry_floor(session: Any, name: str) -> str | None:
    """The newest registered version of ``name``: the next version goes above it."""
    from framework.config.semver import SemVer
    from framework.workflow import registry

    if session is None or not session.store.bucket_exists():
        return None
    versions = registry(session).versions(name)
    return max(versions, key=SemVer.parse) if versions else None


def _production(session: Any, file: Path, stage: str | None, name: str,
                window: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from framework.cli_data import flush_local
    from framework.data_export import production_rows
    from framework.monitoring.store import S3Store

    flush_local(session)
    store = S3Store(session.target.conn.client("s3"), session.bucket)
    rows, exports = production_rows(store, workspace(file, stage).loaded.config, name, window)
    for ex in exports:
        out.print(f"production data of {name} from endpoint {ex.endpoint}: {ex.labelled} "
                  f"labelled row(s), {ex.unlabelled} without a label (not used)")
        for problem in ex.problems():
            err.print(f"[yellow]warning:[/yellow] {problem}")
    if not rows:
        err.print(f"[yellow]warning:[/yellow] no labelled production rows of {name} in the "
                  "window: it trains on the declared training data alone")
    return rows, {"window": window.to_dict(),
                  "endpoints": {ex.endpoint: ex.labelled for ex in exports}}


def _gate(session: Any, file: Path, stage: str | None, name: str, version: str) -> list[Any]:
    from framework.cli_delivery import print_gates
    from framework.workflow import previous_metadata, run_gates

    ws = workspace(file, stage)  # mlops.yaml as retraining left it: the new version
    results = run_gates(ws, name, previous_metadata(session, name, version), session)
    print_gates({f"{name}@{version}": results})
    return results


def _register(session: Any, file: Path, stage: str | None, name: str) -> str:
    """Register the version mlops.yaml now declares; its artifact's registry reference."""
    from framework.registry import refs
    from framework.registry.service import register_declared
    from framework.workflow import registry

    reg = registry(session)
    reg.ensure_bucket(session.target.region)
    ws = workspace(file, stage)
    done = register_declared(reg, ws.loaded.config, ws.root, name)
    for warning in dict.fromkeys(reg.warnings):
        err.print(f"[yellow]warning:[/yellow] {warning}")
    return f"s3://{session.bucket}/{refs.version_key(name, done.version, refs.ARTIFACT)}"


def retrain(model: Annotated[str | None, typer.Argument(help="Model to retrain.")] = None,
            minor: Annotated[bool, typer.Option(help="Bump the minor version, not the patch.")]
            = False,
            param: Annotated[list[str] | None, typer.Option(
                help="Override a training parameter: KEY=VALUE (repeatable).")] = None,
            deploy: Annotated[bool, typer.Option(
                help="Deploy the new version at once (gates, then the endpoint's rollout).")]
            = False,
            pending: Annotated[bool, typer.Option(
                help="Handle the retrain requests monitors left in the registry: a request "
                     "is done once a version passed its gates.")] = False,
            with_production: Annotated[str | None, typer.Option(
                "--with-production", metavar="WINDOW",
                help="First append the labelled rows the model's endpoints captured in "
                     "WINDOW (7d, 24h, or START..END) to its training.data.")] = None,
            register: Annotated[bool, typer.Option(
                help="Run the gates and register the new version in the registry (without "
                     "deploying it).")] = False,
            summary: Annotated[Path | None, typer.Option(
                help="Write what was made (title line, then Markdown: versions, registry "
                     "references, gates, requests) to this file: a pull request's text.")]
            = None,
            file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Run a model's training entry point and make the result its next version."""
    from framework import retrain as rt
    from framework.gates import GateFailedError

    home = file.resolve().parent / ".mlops"
    overrides = _params(param)
    window = None
    if with_production is not None:
        from framework.cli_data import window_option

        window = window_option(with_production, "--with-production")
    if summary is not None:
        summary.unlink(missing_ok=True)  # never a stale description of this run
    requests: list[rt.Request] = []
    session: Any = None
    if pending or register or deploy or window is not None:
        session = open_stage(file, stage, announce=False)
    if pending:
        requests = rt.pending(session.target.conn.client("s3"), session.bucket, model)
        if not requests:
            out.print("no pending retrain requests")
            return
        for req in requests:
            tried = (f"; {len(req.attempts)} earlier attempt(s) failed, the last at "
                     f"{req.last_failure()}" if req.attempts else "")
            out.print(f"retrain request {req.key} (monitor {req.body.get('monitor', '?')})"
                      f"{tried}")
        names = list(dict.fromkeys(req.model for req in requests))
    elif model is None:
        raise ConfigError([Problem(where="retrain", what="name a model, or pass --pending",
                                   hint="e.g. mlops retrain diagnosis")], source="retrain")
    else:
        names = [model]
    for name in names:
        rt.declared_model(file, name)
        if window is not None:
            rt.check_production(file, name)
    gated = pending or register
    proposals: list[rt.Proposal] = []
    failures: list[MlopsError] = []
    for name in names:
        asked = [r for r in requests if r.model == name]
        production = None
        rows = None
        try:
            if window is not None:
                rows, production = _production(session, file, stage, name, window)
            done = rt.retrain(file, home, name, minor=minor, overrides=overrides,
                              floor=_registry_floor(session, name), production=rows)
        except MlopsError as exc:
            if not asked:
                raise
            _attempt(session, asked, {"failure": f"training failed: {exc.what}",
                                      "at": rt.now_iso()})
            err.print(f"[red]error:[/red] {exc.render()}")
            failures.append(exc)
            continue
        appended = done.production
        if appended is not None and production is not None:
            production.update(file=str(Path(appended.path).relative_to(file.resolve().parent)),
                              added=appended.added, present=appended.present)
            out.print(f"appended {appended.added} production row(s) to {production['file']} "
                      f"({appended.present} already there)")
        out.print(f"[green]retrained[/green] {name}: {done.parent} → {done.version} "
                  f"(sha256 {done.sha256[:12]}…, metrics {done.metrics or 'not reported'}); "
                  f"mlops.yaml now declares {done.version}")
        gates: list[Any] = []
        if gated:
            gates = _gate(session, file, stage, name, done.version)
            if not all(g.passed for g in gates):
                assert done.before is not None
                done.before.restore()
                failed = GateFailedError(name, done.version, gates)
                _attempt(session, asked, {
                    "version": done.version, "sha256": done.sha256, "at": rt.now_iso(),
                    "failure": failed.what, "gates": [g.to_dict() for g in gates],
                    "candidate": str(done.out)})
                out.print(f"[red]not kept[/red]: {name} {done.version} failed its gates; "
                          f"mlops.yaml declares {done.parent} again (the candidate stays in "
                          f"{done.out})" + ("; its retrain request stays pending" if asked
                                            else ""))
                failures.append(failed)
                continue
        reference = _register(session, file, stage, name) if register else None
        if reference:
            out.print(f"[green]registered[/green] {name}@{done.version}: {reference}")
        proposal = rt.Proposal(
            model=name, parent=done.parent, version=done.version, sha256=done.sha256,
            metrics=done.metrics, gates=[g.to_dict() for g in gates], reference=reference,
            production=production if appended is not None else None,
            requests=[{"key": r.key, **r.body} for r in asked])
        for req in asked:
            rt.mark_done(session.target.conn.client("s3"), session.bucket, req.key, {
                "version": done.version, "sha256": done.sha256, "request": req.body,
                "gates": proposal.gates, "registered": reference, "at": rt.now_iso(),
                "attempts": len(req.attempts) + 1})
        proposals.append(proposal)
        if summary is not None:
            ws = workspace(file, stage)
            summary.write_text(rt.summary_markdown(proposals, stage=ws.stage))
    if deploy and proposals:
        from framework.cli import deploy as deploy_command

        deploy_command(None, file, stage, wait=True)
    elif proposals:
        out.print("next: `mlops deploy` runs the gates and the endpoint's rollout")
    if failures:
        raise failures[0]


def _attempt(session: Any, asked: list[Any], result: dict[str, Any]) -> None:
    from framework import retrain as rt

    for req in asked:
        where = rt.record_attempt(session.target.conn.client("s3"), session.bucket, req.key,
                                  {**result, "request": req.body})
        out.print(f"recorded the failed attempt at {req.key} ({where})")


@ci_app.command("init")
def ci_init(file: FileOpt = DEFAULT_FILE,
            stage: Annotated[str, typer.Option("--stage", "-s",
                                               help="Stage CI deploys.")] = "prod",
            branch: Annotated[str, typer.Option(help="Branch whose pushes deploy.")] = "main",
            production_window: Annotated[str, typer.Option(
                help="The retrain job appends the labelled production rows of this window to "
                     "the training data of models that declare training.data ('none': never).")]
            = "7d",
            force: Annotated[bool, typer.Option(help="Overwrite an existing workflow.")]
            = False) -> None:
    """Write .github/workflows/mlops.yml: validate → gates → plan on pull requests (the plan
    as a comment-ready Markdown artifact), deploy on the main branch, daily retraining that
    proposes its new versions in a pull request."""
    from framework import ci
    from framework.cli_data import window_option
    from framework.data_export import capturing_endpoints

    ws = workspace(file, stage)
    config = file.resolve().relative_to(ws.root).as_posix() if file.is_absolute() else str(file)
    window: str | None = None
    if production_window.strip().lower() != "none":
        window_option(production_window, "--production-window")  # refused here, not in CI
        trained = {n: m for n, m in ws.loaded.config.models.items() if m.training is not None}
        without = sorted(n for n, m in trained.items()
                         if m.training.data is None
                         or not capturing_endpoints(ws.loaded.config, n))
        if trained and not without:
            window = production_window.strip()
        elif without:
            out.print(f"note: {', '.join(without)} declare(s) no training.data or no capturing "
                      "endpoint: the retrain job trains on the declared data alone")
    text = ci.workflow(stage=ws.stage, region=ws.loaded.region, branch=branch, config=config,
                       production_window=window)
    path = ci.write(ws.root, text, force=force)
    out.print(f"wrote {path}: set the repository variable AWS_DEPLOY_ROLE_ARN to a role "
              "GitHub's OIDC provider may assume (`mlops doctor` lists what it needs); the "
              "retrain job pushes a branch and opens a pull request: allow GitHub Actions to "
              "create pull requests (repository settings), and set a secret MLOPS_PR_TOKEN if "
              "the pull request should start the check job")
