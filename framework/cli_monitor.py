"""``mlops monitor run|report|history`` and ``mlops mail list|show``.

``monitor run`` invokes the *deployed* monitor function with Lambda's ``Invoke`` on every
target (the local AWS runs it on its Lambda service), so what runs locally is what ships; with
``--in-process`` it runs the deployed monitor's settings (read back from its function's
environment) in this process instead.
``mail`` reads the local outbox (``.mlops/local/outbox/*.eml``: every message sent to the
local SES) on the local target, else the copies monitors keep in the registry
(``reports/*/*/message.eml``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email
import json
import urllib.error
import urllib.request
import webbrowser
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from framework.cli_common import DEFAULT_FILE, FileOpt, StageOpt, open_stage, out
from framework.errors import MlopsError

monitor_app = typer.Typer(no_args_is_help=True, help="Run monitors and read their reports.")
mail_app = typer.Typer(no_args_is_help=True, help="Report e-mails the monitors sent.")



class MonitorError(MlopsError):
    """A monitor command could not proceed."""




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


def _invoke_deployed(session: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run the deployed monitor function with Lambda's ``Invoke`` (on AWS, or the local AWS's
    Lambda service alike)."""
    from framework.compile import names
    from framework.compile.compiler import MONITOR_TIMEOUT

    t = session.target
    fn = names.function_name(session.ws.project, session.ws.stage, names.monitor_unit(name))
    if t.gateway_url:  # the local Firehose's buffer interval elapses now: every capture counts
        flush = urllib.request.Request(f"{t.gateway_url}/_mlops/flush", method="POST", data=b"")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(flush, timeout=30).read()
    # A run may take the function's whole timeout; never retried.
    lam = dataclasses.replace(t.conn, read_timeout=MONITOR_TIMEOUT + 30.0,
                              max_attempts=1).client("lambda")
    try:
        resp = lam.invoke(FunctionName=fn, Qualifier=names.ALIAS,
                          Payload=json.dumps(event).encode())
    except Exception as e:
        raise MonitorError(f"monitor '{name}' could not be invoked ({fn}): {e}",
                           hint="run mlops deploy") from e
    payload: Any = json.loads(resp["Payload"].read() or b"null")
    if resp.get("FunctionError"):
        err = payload if isinstance(payload, dict) else {}
        raise MonitorError(f"monitor function {fn} failed: {err.get('errorType')}: "
                           f"{err.get('errorMessage')}", where=fn,
                           hint=f"its log: CloudWatch Logs /aws/lambda/{fn} (locally also "
                                ".mlops/local/logs/)")
    summary: dict[str, Any] = payload
    summary["executed_version"] = resp.get("ExecutedVersion")
    return summary


@monitor_app.command("run")
def run(name: str, window: Annotated[str | None, typer.Option(
            "--window", help="START..END (ISO, UTC); default: the window ending now.")] = None,
        in_process: Annotated[bool, typer.Option(
            "--in-process", help="Run the monitor code in this process, not the deployed "
            "function on the local runner.")] = False,
        file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Run a monitor now and print its verdict."""
    from framework.monitoring.run import Clients, run_monitor
    from framework.monitoring.spec import Window

    session = open_stage(file, stage, announce=False)
    spec = _spec(session, name)
    try:
        win = Window.parse(window) if window else Window.ending(datetime.now(UTC),
                                                                 spec.window_seconds)
    except ValueError as e:
        raise MonitorError(str(e)) from e
    summary = None
    if not in_process:
        summary = _invoke_deployed(session, name, {
            "source": "mlops.cli", "monitor": name, "window": win.to_dict()})
    if summary is not None:
        subject, key, status = summary["subject"], summary["report"], summary["status"]
        note = summary.get("notification") or {}
        where = f" (deployed function, version {summary['executed_version']})"
    else:
        conn = session.target.conn
        clients = Clients(ses=conn.client("ses"), cloudwatch=conn.client("cloudwatch"),
                          lam=conn.client("lambda"), audit=session.audit.record)
        report = run_monitor(spec, _store(session), win, clients)
        subject, key, status = report["subject"], report["report_key"], report["status"]
        note = report.get("notification") or {}
        where = " (in this process)"
    out.print(subject)
    out.print(f"report: s3://{session.bucket}/{key}{where}")
    out.print(f"e-mail: {'sent' if note.get('sent') else 'not sent'} "
              f"({note.get('reason') or ', '.join(note.get('recipients', []))})")
    if status == "failure":
        raise typer.Exit(1)


def _history(session: Any, name: str) -> list[dict[str, Any]]:
    from framework.monitoring.run import history_key

    data = _store(session).get(history_key(name))
    return json.loads(data) if data else []


@monitor_app.command("history")
def history(name: str, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """List past runs of a monitor."""
    runs = _history(open_stage(file, stage, announce=False), name)
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

    session = open_stage(file, stage, announce=False)
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


class _Mailbox:
    """Where ``mail`` reads: the local outbox, or the registry's copies."""

    def __init__(self, session: Any) -> None:
        from framework.local.mail import outbox_of

        self.outbox = outbox_of(session.ws.local_home) if session.target.gateway_url else None
        self.files = self.outbox.messages() if self.outbox is not None else []
        self.store = None if self.files else _store(session)
        self.keys = [k for k in self.store.list("reports/") if k.endswith("/message.eml")] \
            if self.store is not None else []

    @property
    def where(self) -> str:
        return str(self.outbox.dir) if self.files and self.outbox else "the registry"

    def __len__(self) -> int:
        return len(self.files) or len(self.keys)

    def read(self, number: int) -> bytes:
        if self.files:
            return self.files[number - 1].read_bytes()
        assert self.store is not None
        return self.store.get(self.keys[number - 1]) or b""

    def note(self, number: int) -> str:
        if not self.files or self.outbox is None:
            return ""
        meta = self.outbox.meta(self.files[number - 1])
        relay = (meta.get("relay") or {}).get("state")
        status = meta.get("status")
        parts = ["rejected by SES" if status and not 200 <= int(status) < 300 else ""]
        parts.append(f"relay {relay}" if relay else "")
        return ", ".join(p for p in parts if p)


@mail_app.command("list")
def mail_list(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """List report e-mails, newest last."""
    box = _Mailbox(open_stage(file, stage, announce=False))
    table = Table("#", "date", "to", "subject", "note", title=f"messages in {box.where}")
    for i in range(1, len(box) + 1):
        msg = email.message_from_bytes(box.read(i), policy=policy.default)
        table.add_row(str(i), str(msg["Date"]), str(msg["To"]), str(msg["Subject"]),
                      box.note(i))
    out.print(table)


@mail_app.command("show")
def mail_show(number: int, raw: Annotated[bool, typer.Option("--raw")] = False,
              file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Show one e-mail (its text part, or the raw .eml with --raw)."""
    box = _Mailbox(open_stage(file, stage, announce=False))
    if not 1 <= number <= len(box):
        raise MonitorError(f"no message #{number}; `mlops mail list` shows {len(box)}")
    data = box.read(number)
    if raw:
        out.print(data.decode(errors="replace"))
        return
    msg = email.message_from_bytes(data, policy=policy.default)
    out.print(f"Subject: {msg['Subject']}\nTo: {msg['To']}\nDate: {msg['Date']}\n")
    body = msg.get_body(preferencelist=("plain",))
    out.print(body.get_content() if body is not None else "")
    parts = [p.get_content_type() for p in msg.walk()]
    out.print(f"[dim]parts: {', '.join(parts)}[/dim]")
