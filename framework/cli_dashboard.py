"""``mlops dashboard`` (a static site from the registry bucket) and ``mlops doctor``."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from framework.cli_common import DEFAULT_FILE, FileOpt, StageOpt, err, open_stage, out


def dashboard(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
              output: Annotated[Path | None, typer.Option(
                  "--output", "-o", help="Folder to write (default: .mlops/dashboard).")] = None,
              open_: Annotated[bool, typer.Option(
                  "--open", help="Open index.html in a browser afterwards.")] = False,
              publish: Annotated[bool, typer.Option(
                  "--publish", help="Also upload it under dashboard/ in the registry bucket.")]
              = False) -> None:
    """Build the team dashboard: models, endpoints, rollouts, monitors, audit, model cards.

    A static, self-contained HTML site (no server, nothing loaded from the network)."""
    from framework import dashboard as dash
    from framework.dashboard.site import PREFIX

    session = open_stage(file, stage, announce=False)
    data = dash.collect(session)
    pages = dash.render_site(data)
    folder = output or session.ws.home / "dashboard"
    dash.write(pages, folder)
    for warning in data.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    index = folder / "index.html"
    out.print(f"wrote {len(pages)} page(s) to {folder}; open {index.resolve().as_uri()}")
    if publish:
        keys = dash.publish(pages, session.target.conn.client("s3"), session.bucket)
        out.print(f"published {len(keys)} page(s) to s3://{session.bucket}/{PREFIX}"
                  "index.html")
    if open_:
        webbrowser.open(index.resolve().as_uri())


def doctor(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Check the stage's target before a first deploy: credentials, region, registry bucket,
    services, quotas, SES (sandbox, verified addresses), the onnxruntime layer."""
    from framework.doctor import FAIL, STYLE, diagnose
    from framework.workflow import Workspace

    ws = Workspace.open(file, stage)
    checks = diagnose(ws)
    table = Table(title=f"mlops doctor: {ws.project}/{ws.stage} → "
                        f"{ws.loaded.target.value} ({ws.loaded.region})", title_justify="left")
    for col in ("check", "status", "detail", "hint"):
        table.add_column(col)
    for c in checks:
        style = STYLE[c.status]
        table.add_row(c.name, f"[{style}]{c.status}[/{style}]", c.detail, c.hint)
    out.print(table)
    counts = {s: sum(1 for c in checks if c.status == s) for s in STYLE}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    if counts[FAIL]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.command("doctor")(doctor)
