"""``mlops dashboard`` (the team's page, from the registry bucket) and ``mlops doctor``."""

from __future__ import annotations

import webbrowser
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
    err,
    open_stage,
    out,
    print_json,
)
from framework.errors import MlopsError

EXPIRES_HINT = "write a number and a unit, like a monitor's window: 30m, 12h or 7d (at most)"


class DashboardInputError(MlopsError):
    """A dashboard option is invalid (bad input: exit code 2)."""

    exit_code = 2


def _seconds(expires: str) -> int:
    from framework.dashboard.site import MAX_LINK_SECONDS
    from framework.monitoring.spec import window_seconds

    try:
        seconds = window_seconds(expires, "")
    except (ValueError, KeyError, IndexError):
        raise DashboardInputError(f"'{expires}' is not a duration", where="--expires",
                                  hint=EXPIRES_HINT) from None
    if not 1 <= seconds <= MAX_LINK_SECONDS:
        raise DashboardInputError(f"a presigned link lasts 1 s to 7 days, not {expires}",
                                  where="--expires", hint=EXPIRES_HINT)
    return seconds


def _link(session: Any, seconds: int) -> dict[str, Any]:
    """A fresh presigned link to the stage's published page."""
    from framework.dashboard.site import PAGE, prefix, presign
    from framework.monitoring.store import missing

    s3 = session.target.conn.client("s3")
    key = prefix(session.ws.project, session.ws.stage) + PAGE
    try:
        s3.head_object(Bucket=session.bucket, Key=key)
    except Exception as exc:  # botocore's ClientError
        if not missing(exc):
            raise
        raise MlopsError(f"no dashboard is published at s3://{session.bucket}/{key}",
                         hint="`mlops deploy` publishes it, and so does "
                              "`mlops dashboard --publish`") from None
    return presign(s3, session.bucket, key, seconds)


def dashboard(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
              output: Annotated[Path | None, typer.Option(
                  "--output", "-o", help="Folder to write (default: .mlops/dashboard).")] = None,
              open_: Annotated[bool, typer.Option(
                  "--open", help="Open index.html in a browser afterwards.")] = False,
              publish: Annotated[bool, typer.Option(
                  "--publish", help="Also publish it to the registry bucket (as `mlops deploy` "
                                    "and every monitor run do) and print a link to it.")]
              = False,
              url: Annotated[bool, typer.Option(
                  "--url", help="Print a fresh presigned link to the published page (builds "
                                "nothing unless --publish is given too).")] = False,
              expires: Annotated[str, typer.Option(
                  "--expires", help="How long the link works: 30m, 12h, 7d (the most SigV4 "
                                    "allows; temporary credentials end it sooner).")] = "7d",
              ) -> None:
    """Build the team dashboard: one self-contained HTML page of models, endpoints, rollouts,
    monitors, model cards and the audit log (no server, nothing loaded from the network).

    The registry bucket stays private: the published page is opened with a presigned link."""
    from framework.dashboard import collect as dash
    from framework.dashboard.render import render_site
    from framework.dashboard.site import write

    seconds = _seconds(expires)
    session = open_stage(file, stage, announce=False)
    if url and not publish:
        out.print(_link(session, seconds)["url"])
        return
    data = dash.collect(session, dash.published(session))
    pages = render_site(data)
    folder = output or session.ws.home / "dashboard"
    write(pages, folder)
    for warning in data.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    index = folder / "index.html"
    out.print(f"wrote {index}; open {index.resolve().as_uri()}")
    if publish:
        if not session.store.bucket_exists():
            raise MlopsError(f"the registry bucket s3://{session.bucket} does not exist yet",
                             hint="run `mlops deploy` first")
        key = dash.publish(session, data)
        link = _link(session, seconds)
        out.print(f"published s3://{session.bucket}/{key}; link (works until "
                  f"{link['expires_at']} at the latest):")
        out.print(link["url"])
    if open_:
        webbrowser.open(index.resolve().as_uri())


def doctor(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           output: OutputOpt = Output.table) -> None:
    """Check the stage's target before a first deploy: credentials, region, registry bucket,
    services, quotas, SES (sandbox, verified addresses), the onnxruntime layer, and the
    deployed model artifacts' SHA-256 (exit 7 when one is damaged, 1 for any other failure)."""
    from framework.doctor import FAIL, STYLE, diagnose
    from framework.workflow import Workspace

    ws = Workspace.open(file, stage)
    checks = diagnose(ws)
    counts = {s: sum(1 for c in checks if c.status == s) for s in STYLE}
    if output is Output.json:
        print_json({"project": ws.project, "stage": ws.stage,
                    "target": ws.loaded.target.value, "region": ws.loaded.region,
                    "checks": [{"name": c.name, "status": c.status, "detail": c.detail,
                                "hint": c.hint} for c in checks], "counts": counts})
    else:
        _doctor_table(ws, checks, counts)
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        from rich.markup import escape

        err.print(f"[red]error:[/red] {len(failed)} check(s) failed: "
                  f"{escape(', '.join(c.name for c in failed))}\n"
                  f"  hint: {escape(failed[0].hint or 'the table above says what each found')}")
        raise typer.Exit(max(c.exit_code for c in failed))


def _doctor_table(ws: Any, checks: list[Any], counts: dict[str, int]) -> None:
    from framework.doctor import STYLE

    table = Table(title=f"mlops doctor: {ws.project}/{ws.stage} → "
                        f"{ws.loaded.target.value} ({ws.loaded.region})", title_justify="left")
    for col in ("check", "status", "detail", "hint"):
        table.add_column(col)
    for c in checks:
        style = STYLE[c.status]
        table.add_row(c.name, f"[{style}]{c.status}[/{style}]", c.detail, c.hint)
    out.print(table)
    out.print(", ".join(f"{n} {s}" for s, n in counts.items()))


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.command("doctor")(doctor)
