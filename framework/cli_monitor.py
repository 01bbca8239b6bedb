"""``mlops monitor run|report|history`` and ``mlops mail list|show``.

``monitor run`` runs the *deployed* monitor's settings (read back from its function's
environment) in this process against the stage's target, exactly as the function would.
``mail`` reads the messages monitors kept in the registry (``reports/*/*/message.eml``).
"""

from __future__ import annotations

import email
import json
import webbrowser
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from framework.errors import MlopsError

monitor_app = typer.Typer(no_args_is_help=True, help="Run monitors and read their reports.")
mail_app = typer.Typer(no_args_is_help=True, help="Report e-mails the monitors sent.")
out = Console(highlight=False, soft_wrap=True)

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="Path of mlops.yaml.")]
StageOpt = Annotated[str | None, typer.Option("--stage", "-s", help="Stage to act on.")]
DEFAULT_FILE = Path("mlops.yaml")


class MonitorError(MlopsError):
    """A monitor command could not proceed."""


def _session(file: Path, stage: str | None) -> Any:
    from framework.workflow import Workspace, open_session

    return open_session(Workspace.open(file, stage))


def _spec(session: Any, name: str) -> Any:
    from framework.compile import names
    from framework.monitoring.spec import MonitorSpec

    if name not in session.ws.loaded.config.monitors:
        raise MonitorError(f"no monitor named '{name}' in mlops.yaml")
    fn = names.function_name(session.ws.project, session.ws.stage, names.monitor_unit(name))
    try:
        conf = session.target.conn.client("lambda").get_function_configuration(FunctionName=fn)
    except Exception as e:
        raise MonitorError(f"monitor '{name}' is not deployed ({fn}: {e}); run mlops deploy"
                           ) from e
    return MonitorSpec.from_dict(json.loads(conf["Environment"]["Variables"]["MLOPS_MONITOR"]))


def _store(session: Any) -> Any:
    from framework.monitoring.store import S3Store

    return S3Store(session.target.conn.client("s3"), session.bucket)


@monitor_app.command("run")
def run(name: str, window: Annotated[str | None, typer.Option(
            "--window", help="START..END (ISO, UTC); default: the window ending now.")] = None,
        file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Run a monitor now and print its verdict."""
    from framework.monitoring.run import Clients, run_monitor
    from framework.monitoring.spec import Window

    session = _session(file, stage)
    spec = _spec(session, name)
    try:
        win = Window.parse(window) if window else Window.ending(datetime.now(UTC),
                                                                 spec.window_seconds)
    except ValueError as e:
        raise MonitorError(str(e)) from e
    conn = session.target.conn
    clients = Clients(ses=conn.client("ses"), cloudwatch=conn.client("cloudwatch"),
                      lam=conn.client("lambda"), audit=session.audit.record)
    report = run_monitor(spec, _store(session), win, clients)
    out.print(report["subject"])
    out.print(f"report: s3://{session.bucket}/{report['report_key']}")
    note = report.get("notification") or {}
    out.print(f"e-mail: {'sent' if note.get('sent') else 'not sent'} "
              f"({note.get('reason') or ', '.join(note.get('recipients', []))})")
    if report["status"] == "failure":
        raise typer.Exit(1)


def _history(session: Any, name: str) -> list[dict[str, Any]]:
    from framework.monitoring.run import history_key

    data = _store(session).get(history_key(name))
    return json.loads(data) if data else []


@monitor_app.command("history")
def history(name: str, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """List past runs of a monitor."""
    runs = _history(_session(file, stage), name)
    table = Table("run", "window end", "status", "rows", "drift share", "report")
    for h in runs:
        f = h.get("figures", {})
        share = f.get("drift_share")
        table.add_row(h["run_id"], h["window"]["end"], h["status"], str(f.get("rows")),
                      "–" if share is None else f"{share:.2f}", h["report"])
    out.print(table if runs else f"no runs of '{name}' yet")


@monitor_app.command("report")
def report(name: str, html: Annotated[Path | None, typer.Option(
               "--html", help="Write the HTML report to this file.")] = None,
           open_: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
           file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Print (or write / open) the latest report of a monitor."""
    from framework.monitoring.report import render_text

    session = _session(file, stage)
    runs = _history(session, name)
    if not runs:
        raise MonitorError(f"no reports of '{name}' yet; run `mlops monitor run {name}`")
    key = runs[-1]["report"]
    store = _store(session)
    body = json.loads(store.get(key) or b"{}")
    if html or open_:
        target = html or Path(".mlops") / "reports" / name / f"{body['run_id']}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(key.replace(".json", ".html")) or b"")
        out.print(f"wrote {target}")
        if open_:
            webbrowser.open(target.resolve().as_uri())
    else:
        out.print(render_text(body))


def _messages(session: Any) -> list[str]:
    return [k for k in _store(session).list("reports/") if k.endswith("/message.eml")]


@mail_app.command("list")
def mail_list(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """List report e-mails, newest last."""
    session = _session(file, stage)
    store = _store(session)
    table = Table("#", "date", "to", "subject")
    for i, key in enumerate(_messages(session), start=1):
        msg = email.message_from_bytes(store.get(key) or b"", policy=policy.default)
        table.add_row(str(i), str(msg["Date"]), str(msg["To"]), str(msg["Subject"]))
    out.print(table)


@mail_app.command("show")
def mail_show(number: int, raw: Annotated[bool, typer.Option("--raw")] = False,
              file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Show one e-mail (its text part, or the raw .eml with --raw)."""
    session = _session(file, stage)
    keys = _messages(session)
    if not 1 <= number <= len(keys):
        raise MonitorError(f"no message #{number}; `mlops mail list` shows {len(keys)}")
    data = _store(session).get(keys[number - 1]) or b""
    if raw:
        out.print(data.decode(errors="replace"))
        return
    msg = email.message_from_bytes(data, policy=policy.default)
    out.print(f"Subject: {msg['Subject']}\nTo: {msg['To']}\nDate: {msg['Date']}\n")
    body = msg.get_body(preferencelist=("plain",))
    out.print(body.get_content() if body is not None else "")
    parts = [p.get_content_type() for p in msg.walk()]
    out.print(f"[dim]parts: {', '.join(parts)}[/dim]")
