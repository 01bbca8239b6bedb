"""``mlops models ...`` (the registry) and ``mlops build`` (scikit-learn → ONNX).

Thin: parsing and printing over ``framework.registry``. Every change is audited by the
registry itself (one record per change, before → after).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from framework.cli_common import (
    DEFAULT_FILE,
    FileOpt,
    Output,
    OutputOpt,
    StageOpt,
    check_name,
    err,
    open_stage,
    out,
    print_json,
)
from framework.errors import MlopsError

models_app = typer.Typer(no_args_is_help=True,
                         help="The model registry: versions, aliases, approvals, lineage, cards.")


RefArg = Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")]
DeployOpt = Annotated[bool, typer.Option("--deploy", help="Deploy at once so endpoints follow.")]




def _registry(session: Any) -> Any:
    from framework.workflow import registry

    return registry(session)


def _ref(text: str) -> Any:
    from framework.registry.refs import ModelRef

    return ModelRef.parse(text)


def _pinned(reg: Any, text: str) -> Any:
    """A reference resolved to a version (alias or latest when none is given)."""
    from framework.registry.refs import ModelRef

    ref = _ref(text)
    return ModelRef(ref.name, version=reg.resolve(ref))


def _warnings(reg: Any) -> None:
    for warning in dict.fromkeys(reg.warnings):
        err.print(f"[yellow]warning:[/yellow] {warning}")


def _deploy_now(file: Path, stage: str | None) -> None:
    from framework.cli import deploy

    deploy(saved=None, file=file, stage=stage)


@models_app.command("list")
def list_cmd(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
             output: OutputOpt = Output.table) -> None:
    """Every registered model: versions, latest, aliases."""
    reg = _registry(open_stage(file, stage, announce=False, read=True))
    if output is Output.json:
        print_json({"registry": f"s3://{reg.bucket}/models/", "models": [
            {"name": name, "versions": versions, "latest": versions[-1] if versions else None,
             "aliases": reg.aliases(name)}
            for name in reg.models() for versions in [reg.versions(name)]]})
        return
    table = Table(title=f"registry s3://{reg.bucket}/models/", title_justify="left")
    for col in ("model", "versions", "latest", "aliases"):
        table.add_column(col)
    for name in reg.models():
        versions = reg.versions(name)
        aliases = reg.aliases(name)
        table.add_row(name, str(len(versions)), versions[-1] if versions else "—",
                      ", ".join(f"{a} → {v}" for a, v in aliases.items()) or "—")
    out.print(table)


@models_app.command()
def show(ref: RefArg, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
         verify: Annotated[bool, typer.Option(help="Check the artifact's SHA-256.")] = False,
         as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
         output: OutputOpt = Output.table) -> None:
    """A version's metadata (the latest, or the one an alias points at); -o json prints its
    metadata.json."""
    from framework.registry.service import approver_identity

    reg = _registry(open_stage(file, stage, announce=False, read=True))
    check_name(_ref(ref).name, reg.models(), what="model", where=ref, source="models show",
               listed="in the registry")
    pinned = _pinned(reg, ref)
    meta = reg.verify(pinned.name, pinned.version) if verify else \
        reg.metadata(pinned.name, pinned.version)
    if as_json or output is Output.json:
        print_json(meta)
        return
    aliases = [a for a, v in reg.aliases(pinned.name).items() if v == pinned.version]
    code = meta.get("code") or {}
    data = meta.get("data") or {}
    out.print(f"[bold]{pinned.name}@{pinned.version}[/bold]"
              f"{' (' + ', '.join(aliases) + ')' if aliases else ''}")
    for key, value in (
        ("created", f"{meta.get('created_at')} by {meta.get('author')}"),
        ("sha256", meta.get("sha256")),
        ("metrics", json.dumps(meta.get("metrics") or {}, sort_keys=True)),
        ("params", json.dumps(meta.get("params") or {}, sort_keys=True)),
        ("data", f"{data.get('path')} sha256 {str(data.get('sha256'))[:12]}… "
                 f"{data.get('rows')} rows × {data.get('columns')} columns" if data else "—"),
        ("code", f"{code.get('commit')}{' (dirty)' if code.get('dirty') else ''}"),
        ("parent", (meta.get("lineage") or {}).get("parent") or "—"),
        ("tags", json.dumps(meta.get("tags") or {}, sort_keys=True)),
        ("approvals", ", ".join(f"{a['by']} as {approver_identity(a).principal} "
                                f"({a.get('alias') or 'any'})"
                                for a in reg.approvals(pinned.name, pinned.version)) or "—"),
        ("registered", (meta.get("registered_by") or {}).get("principal") or "—"),
    ):
        out.print(f"  {key:<10} {value}")
    if verify:
        out.print("  [green]integrity ok[/green]: the stored artifact matches its SHA-256")


@models_app.command()
def register(names: Annotated[list[str] | None, typer.Argument(
                 help="Models from mlops.yaml (default: all).")] = None,
             file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Register the versions mlops.yaml declares (a no-op for identical bytes)."""
    from framework.registry.service import register_declared

    session = open_stage(file, stage, announce=False)
    reg = _registry(session)
    config = session.ws.loaded.config
    reg.ensure_bucket(session.target.region, config.registry.lock.retention_days)
    for name in names or list(config.models):
        done = register_declared(reg, config, session.ws.root, name)
        if done.created:
            parent = (done.metadata.get("lineage") or {}).get("parent")
            out.print(f"[green]registered[/green] {name}@{done.version} (sha256 "
                      f"{done.metadata['sha256'][:12]}…, parent {parent or '—'})")
        else:
            out.print(f"{name}@{done.version} is already registered with these bytes: "
                      "nothing to do")
    _warnings(reg)


@models_app.command()
def restore(ref: Annotated[str, typer.Argument(help="NAME@VERSION whose artifact is damaged.")],
            source: Annotated[Path | None, typer.Option(
                "--from", help="A file with the recorded bytes (default: the artifact "
                "mlops.yaml declares, when it declares this version).")] = None,
            file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Put a version's recorded bytes back after its model.onnx was changed outside mlops:
    from the given (or declared) file if it has them, else from the newest earlier version of
    the object in the versioned registry bucket. Audited."""
    session = open_stage(file, stage, announce=False)
    reg = _registry(session)
    pinned = _pinned(reg, ref)
    path = source
    declared = session.ws.loaded.config.models.get(pinned.name)
    if path is None and declared is not None and declared.version == pinned.version:
        path = session.ws.root / declared.artifact
    if source is not None and not source.is_file():
        raise MlopsError(f"{source} is not a file", where="--from",
                         hint="give the path of the original model.onnx")
    candidate = path.read_bytes() if path is not None and path.is_file() else None
    came_from = reg.restore(pinned.name, pinned.version, candidate)
    if came_from == "intact":
        out.print(f"{pinned.name}@{pinned.version} is intact: nothing to restore")
    else:
        where = str(path) if came_from == "the given file" else came_from
        out.print(f"[green]restored[/green] {pinned.name}@{pinned.version} from {where}; its "
                  "artifact has the SHA-256 metadata.json records again")
    _warnings(reg)


@models_app.command()
def promote(ref: Annotated[str, typer.Argument(help="NAME@VERSION to point the alias at.")],
            alias: Annotated[str, typer.Option("--alias", "-a", help="e.g. production.")],
            reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
            deploy: DeployOpt = False,
            file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Point an alias at a version (compare-and-swap; approvals from mlops.yaml apply)."""
    from framework.registry.service import promote as do_promote

    session = open_stage(file, stage, announce=False)
    reg = _registry(session)
    before = reg.alias(_ref(ref).name, alias).version
    doc = do_promote(reg, session.ws.loaded.config, _ref(ref), alias, reason)
    if before == doc.get("version"):
        out.print(f"'{alias}' already points at {ref}: nothing to do")
    else:
        out.print(f"[green]promoted[/green] {doc['model']}@{doc['version']} to '{alias}' "
                  f"(was {before or 'unset'}; change #{doc['seq']})")
    _warnings(reg)
    if deploy:
        _deploy_now(file, stage)


@models_app.command()
def approve(ref: Annotated[str, typer.Argument(help="NAME@VERSION to approve.")],
            by: Annotated[str, typer.Option(
                "--by", help="The approver's name, as shown; what counts is the caller's "
                "verified identity.")],
            note: Annotated[str, typer.Option("--note", help="Why, for the record.")] = "",
            alias: Annotated[str | None, typer.Option(
                "--alias", "-a", help="Approve for this alias only (default: any).")] = None,
            file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Record an approval of a version by the caller's verified identity (immutable; audited);
    --by is the name shown beside it."""
    from framework.registry.service import approve as do_approve

    session = open_stage(file, stage, announce=False)
    reg = _registry(session)
    pinned = _pinned(reg, ref)
    rec = do_approve(reg, session.ws.loaded.config, pinned, by, note, alias)
    out.print(f"[green]approved[/green] {pinned.name}@{pinned.version} by {rec['by']} as "
              f"{rec['identity']['principal']}{' for ' + alias if alias else ''}")
    _warnings(reg)


@models_app.command()
def rollback(name: Annotated[str, typer.Argument(help="Model name.")],
             alias: Annotated[str, typer.Option("--alias", "-a")] = "production",
             to: Annotated[str | None, typer.Option(help="Version (default: the previous).")]
             = None,
             reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
             deploy: DeployOpt = False,
             file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Move an alias back to the version it pointed at before."""
    from framework.registry.service import rollback as do_rollback

    reg = _registry(open_stage(file, stage, announce=False))
    doc = do_rollback(reg, _ref(name).name, alias, to, reason)
    out.print(f"[yellow]rolled back[/yellow] '{alias}' of {name}: {doc['previous']} → "
              f"{doc['version']}; endpoints serving {name}@{alias} follow on the next deploy")
    _warnings(reg)
    if deploy:
        _deploy_now(file, stage)


@models_app.command()
def history(name: Annotated[str, typer.Argument(help="Model name.")],
            alias: Annotated[str | None, typer.Option("--alias", "-a")] = None,
            at: Annotated[str | None, typer.Option(
                help="Answer what each alias pointed at, at this UTC time.")] = None,
            file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
            output: OutputOpt = Output.table) -> None:
    """Every alias change (who, when, from → to), or the aliases at a point in time."""
    from framework.registry.service import at_time, parse_time

    reg = _registry(open_stage(file, stage, announce=False, read=True))
    check_name(_ref(name).name, reg.models(), what="model", where=name,
               source="models history", listed="in the registry")
    records = reg.history(_ref(name).name, alias)
    if at is not None:
        when = parse_time(at)
        state = at_time(records, when)
        if output is Output.json:
            print_json({"model": name, "at": when.isoformat(), "aliases": state})
            return
        if not state:
            out.print(f"{name} had no aliases")
        for a, v in state.items():
            out.print(f"at {when:%Y-%m-%d %H:%M:%S} UTC, {name}@{a} was "
                      f"{v or 'not yet set'}")
        return
    if output is Output.json:
        print_json({"model": name, "records": records})
        return
    table = Table(title=f"alias history of {name}", title_justify="left")
    for col in ("#", "time (UTC)", "alias", "from", "to", "action", "by", "reason"):
        table.add_column(col)
    for rec in records:
        table.add_row(str(rec["seq"]), str(rec["changed_at"]), str(rec["alias"]),
                      str(rec.get("previous") or "—"), str(rec["version"]),
                      str(rec.get("action", "")), str(rec.get("changed_by", "")),
                      str(rec.get("reason", "")))
    out.print(table)


@models_app.command()
def lineage(ref: RefArg, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
            output: OutputOpt = Output.table) -> None:
    """The chain of parent versions, with the data and code each came from."""
    from framework.registry.service import lineage as chain_of

    reg = _registry(open_stage(file, stage, announce=False, read=True))
    check_name(_ref(ref).name, reg.models(), what="model", where=ref, source="models lineage",
               listed="in the registry")
    pinned = _pinned(reg, ref)
    chain = chain_of(reg, pinned.name, pinned.version)
    if output is Output.json:  # the metadata.json of the version, then of its parent, ...
        print_json({"model": pinned.name, "version": pinned.version, "chain": chain})
        return
    for depth, meta in enumerate(chain):
        data = meta.get("data") or {}
        code = meta.get("code") or {}
        arrow = "   " * (depth - 1) + "└─ " if depth else ""
        out.print(f"{arrow}[bold]{meta['name']}@{meta['version']}[/bold]  "
                  f"data {str(data.get('sha256'))[:12]} ({data.get('rows')} rows)  "
                  f"code {str(code.get('commit'))[:12]}{' dirty' if code.get('dirty') else ''}"
                  f"  {meta.get('created_at', '')}")


@models_app.command()
def diff(a: Annotated[str, typer.Argument(help="NAME@VERSION (or NAME@ALIAS).")],
         b: Annotated[str, typer.Argument(help="Another version: NAME@VERSION or VERSION.")],
         file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Metadata and metric differences between two versions."""
    from framework.registry.service import diff as diff_of

    reg = _registry(open_stage(file, stage, announce=False, read=True))
    left = _pinned(reg, a)
    right = _pinned(reg, b if "@" in b else f"{left.name}@{b}")
    ma = reg.metadata(left.name, left.version)
    mb = reg.metadata(right.name, right.version)
    table = Table(title=f"{left.name}@{left.version} → {right.name}@{right.version}",
                  title_justify="left")
    for col in ("key", str(left.version), str(right.version), "Δ"):
        table.add_column(col)
    for key, va, vb in diff_of(ma, mb):
        delta = ""
        if isinstance(va, int | float) and isinstance(vb, int | float) and \
                not isinstance(va, bool) and key.startswith("metrics."):
            delta = f"{vb - va:+.4g}"
        table.add_row(key, str(va), str(vb), delta)
    out.print(table)


@models_app.command()
def card(ref: RefArg, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
         output: Annotated[Path | None, typer.Option(
             "--output", "-o", help="Folder for card.md and card.html (default: .mlops/cards).")]
         = None) -> None:
    """Render the model card (Markdown and HTML) of a version."""
    from framework.registry import card as cards
    from framework.registry.service import lineage as chain_of

    session = open_stage(file, stage, announce=False)
    reg = _registry(session)
    pinned = _pinned(reg, ref)
    meta = reg.metadata(pinned.name, pinned.version)
    model = session.ws.loaded.config.models.get(pinned.name)
    parts = cards.sections(
        meta, intended_use=model.intended_use if model else "",
        limitations=model.limitations if model else (),
        chain=chain_of(reg, pinned.name, pinned.version),
        approvals=reg.approvals(pinned.name, pinned.version), aliases=reg.aliases(pinned.name))
    title = f"{pinned.name}@{pinned.version}"
    folder = output or session.ws.home / "cards" / pinned.name / pinned.version
    folder.mkdir(parents=True, exist_ok=True)
    md = cards.markdown(title, parts)
    (folder / "card.md").write_text(md)
    (folder / "card.html").write_text(cards.to_html(title, parts))
    out.print(md)
    err.print(f"wrote {folder / 'card.md'} and {folder / 'card.html'}")


@models_app.command()
def reproduce(ref: RefArg, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
              tolerance: Annotated[float, typer.Option(
                  help="Largest accepted absolute metric difference.")] = 1e-3) -> None:
    """Re-run the training entry point with the recorded parameters and data; compare."""
    from framework.registry.reproduce import reproduce as run

    session = open_stage(file, stage, announce=False)
    reg = _registry(session)
    pinned = _pinned(reg, ref)
    result = run(reg, session.ws.root, pinned.name, pinned.version, tolerance)
    for line in result.lines:
        out.print(f"  {line}")
    if result.matches:
        out.print(f"[green]reproduced[/green] {pinned.name}@{pinned.version}: {result.how}")
    else:
        out.print(f"[red]not reproduced[/red] {pinned.name}@{pinned.version}: {result.how}")
        raise typer.Exit(1)


def build(model: Annotated[list[str] | None, typer.Argument(
              help="Models from mlops.yaml with a `source:` (default: all of them).")] = None,
          file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Convert scikit-learn estimators (`source:`) to ONNX (`artifact:`), checking parity."""
    from framework.registry.build import build_model
    from framework.workflow import Workspace

    ws = Workspace.open(file, stage)
    config = ws.loaded.config
    chosen = model or [n for n, m in config.models.items() if m.source]
    if not chosen:
        raise MlopsError("no model declares a `source:` to build",
                         hint="add source: path/to/estimator.joblib to a model in mlops.yaml")
    for name in chosen:
        report = build_model(ws.root, name, config.models.get(name))
        out.print(f"[green]built[/green] {name}: {report['artifact']} (sha256 "
                  f"{report['sha256'][:12]}…); parity max |Δp| = "
                  f"{report['parity']['max_abs_diff']:.2e} on {report['parity']['rows']} rows "
                  f"(limit {report['parity']['tolerance']:g})")


def verify_audit(file: Path, stage: str | None, output: Output) -> None:
    """``mlops audit --verify``: walk the audit trail's chains in the registry; exit 7 when a
    record was removed, altered, hidden behind a delete marker or forged into a chain."""
    from framework.registry.audit_verify import verify
    from framework.registry.errors import RegistryIntegrityError

    session = open_stage(file, stage, announce=False, read=True)
    result = verify(session.target.conn.client("s3"), session.bucket)
    if output is Output.json:
        print_json(result.to_dict())
        if not result.intact:
            raise typer.Exit(RegistryIntegrityError.exit_code)
        return
    chains = ", ".join(f"{w}: {n}" for w, n in sorted(result.chains.items())) or "none"
    out.print(f"audit trail of s3://{result.bucket}: {result.records} record(s) in chains "
              f"({chains}); {result.unchained} written before the chain")
    if result.intact:
        out.print("[green]intact[/green]: every record is the one its chain links, in order")
        return
    table = Table(title="what is wrong", title_justify="left")
    for col in ("problem", "chain", "#", "detail"):
        table.add_column(col)
    for f in result.findings:
        table.add_row(f.problem, f.chain, "" if f.seq is None else str(f.seq), f.detail)
    out.print(table)
    raise RegistryIntegrityError(
        f"the audit trail of s3://{result.bucket} is not intact: {len(result.findings)} "
        "finding(s)", where=f"s3://{result.bucket}/audit/",
        hint="the records above were changed outside mlops; a version kept under Object Lock "
             "can be read back with `aws s3api get-object --version-id`")
