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
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
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
    open_stage,
    out,
    print_json,
    workspace,
)
from framework.errors import MlopsError

WINDOW_HINT = ("write START..END as ISO 8601 dates or times in UTC, START before END, e.g. "
               "--window 2024-05-01..2024-05-02T12:00")
monitor_app = typer.Typer(no_args_is_help=True, help="Run monitors and read their reports.")
mail_app = typer.Typer(no_args_is_help=True, help="Report e-mails the monitors sent.")



class MonitorError(MlopsError):
    """A monitor command could not proceed."""


class MonitorInputError(MonitorError):
    """A monitor command's argument is invalid (bad input: exit code 2)."""

    exit_code = 2


class VerdictError(MonitorError):
    """The monitor ran and its verdict is one ``--fail-on`` names: exit code 9."""

    exit_code = 9


VERDICTS = ("drift", "degraded", "no_data")  # what `--fail-on any` means; "ok" never fails


def fail_on_verdicts(values: list[str] | None) -> set[str]:
    """The verdicts ``--fail-on`` names (repeated or comma-separated; ``any``: all three)."""
    wanted = {v.strip().lower() for value in values or () for v in value.split(",") if v.strip()}
    unknown = sorted(wanted - {*VERDICTS, "any"})
    if unknown:
        raise MonitorInputError(f"unknown verdict {', '.join(unknown)}", where="--fail-on",
                                hint=f"one or more of {', '.join(VERDICTS)}, any "
                                     "(e.g. --fail-on drift,degraded)")
    return set(VERDICTS) if "any" in wanted else wanted




def _monitor_session(file: Path, stage: str | None, name: str, *, read: bool) -> Any:
    """The stage's session, once ``name`` is known to be one of its monitors (exit 2 with
    the close names otherwise)."""
    ws = workspace(file, stage)
    check_name(name, ws.loaded.config.monitors, what="monitor", where=name, source="monitor")
    return open_stage(file, stage, ws=ws, read=read, announce=False)


def _spec(session: Any, name: str) -> Any:
    from framework.compile import names
    from framework.monitoring.spec import MonitorSpec

    fn = names.function_name(session.ws.project, session.ws.stage, names.monitor_unit(name))
    try:
        conf = session.target.conn.client("lambda").get_function_configuration(FunctionName=fn)
    except Exception as e:
        raise MonitorError(f"monitor '{name}' is not deployed ({fn}: {e})",
                           hint="deploy it with `mlops deploy`") from e
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
        import urllib.request

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
        fail_on: Annotated[list[str] | None, typer.Option(
            "--fail-on", help="Exit 9 when the verdict is one of these: drift, degraded, "
            "no_data, any (repeat it, or separate with commas).")] = None,
        file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Run a monitor now and print its verdict."""
    from framework.compile import names
    from framework.monitoring.run import Clients, run_monitor
    from framework.monitoring.spec import Window
    from framework.progress import say

    failing = fail_on_verdicts(fail_on)
    try:
        given = Window.parse(window) if window is not None else None
    except ValueError as e:
        raise MonitorInputError(str(e), where="--window", hint=WINDOW_HINT) from e
    session = _monitor_session(file, stage, name, read=False)
    spec = _spec(session, name)
    win = given or Window.ending(datetime.now(UTC), spec.window_seconds)
    summary = None
    say(f"running monitor {name} on window {win.start:%Y-%m-%d %H:%M} → {win.end:%Y-%m-%d %H:%M} "
        f"UTC ({'in this process' if in_process else 'its deployed function'})")
    if not in_process:
        summary = _invoke_deployed(session, name, {
            "source": "mlops.cli", "monitor": name, "window": win.to_dict()})
    if summary is not None:
        subject, key, status = summary["subject"], summary["report"], summary["status"]
        note = summary.get("notification") or {}
        done = summary.get("actions") or []
        where = f" (deployed function, version {summary['executed_version']})"
        fn = names.function_name(session.ws.project, session.ws.stage, names.monitor_unit(name))
        log_hint = f"CloudWatch Logs /aws/lambda/{fn} (locally also .mlops/local/logs/)"
    else:
        conn = session.target.conn
        clients = Clients(ses=conn.client("ses"), cloudwatch=conn.client("cloudwatch"),
                          lam=conn.client("lambda"), audit=session.audit.record)
        log_file = session.ws.home / "logs" / f"monitor-{name}.log"
        with _logging_to(log_file):  # a failed check's traceback, not on the terminal
            report = run_monitor(spec, _store(session), win, clients)
        subject, key, status = report["subject"], report["report_key"], report["status"]
        note = report.get("notification") or {}
        done = report.get("actions") or []
        where = " (in this process)"
        log_hint = str(log_file)
    out.print(subject)
    out.print(f"report: s3://{session.bucket}/{key}{where}")
    out.print(f"e-mail: {'sent' if note.get('sent') else 'not sent'} "
              f"({note.get('reason') or ', '.join(note.get('recipients', []))})")
    for action in done:  # on_drift's rollback and retrain, done or not, and why
        mark = "done" if action.get("ok") else "not done"
        out.print(f"{action.get('action')}: {mark}: {action.get('outcome')}")
    if status == "failure":
        raise MonitorError(f"monitor '{name}' could not run its check (run "
                           f"{key.rsplit('/', 2)[-2]})", hint=f"its log: {log_hint}; "
                           f"the report says why: mlops monitor report {name}")
    if status in failing:
        raise VerdictError(f"monitor '{name}' found {status.replace('_', ' ')} (--fail-on "
                           f"{','.join(sorted(failing))})",
                           hint=f"the report says what: mlops monitor report {name}")


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The monitor's log records go to ``path`` (appended) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("mlops.monitor")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        handler.close()


def _history(session: Any, name: str) -> list[dict[str, Any]]:
    from framework.monitoring.run import history_key

    key = history_key(name)
    data = _store(session).get(key)
    try:
        runs = json.loads(data) if data else []
    except ValueError:
        runs = None
    if not isinstance(runs, list):
        raise MonitorError(f"{key} in the registry is not a JSON list of runs",
                           hint=f"the next `mlops monitor run {name}` starts its history again")
    # A run without the keys every run has is not one the monitor wrote: left out.
    return [run for run in runs if isinstance(run, dict) and isinstance(run.get("report"), str)
            and isinstance(run.get("window"), dict)]


@monitor_app.command("history")
def history(name: str, file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
            output: OutputOpt = Output.table) -> None:
    """List past runs of a monitor."""
    runs = _history(_monitor_session(file, stage, name, read=True), name)
    if output is Output.json:
        print_json({"monitor": name, "runs": runs})
        return
    table = Table("run", "window end", "status", "rows", "drift share", "report")
    for h in runs:
        figures = h.get("figures")
        f: dict[str, Any] = figures if isinstance(figures, dict) else {}
        share = f.get("drift_share")
        table.add_row(str(h.get("run_id")), str(h["window"].get("end")), str(h.get("status")),
                      str(f.get("rows")),
                      "–" if share is None else f"{share:.2f}", h["report"])
    out.print(table if runs else f"no runs of '{name}' yet")


@monitor_app.command("report")
def report(name: str, html: Annotated[Path | None, typer.Option(
               "--html", help="Write the HTML report to this file.")] = None,
           open_: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
           file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
           output: OutputOpt = Output.table) -> None:
    """Print (or write / open) the latest report of a monitor."""
    from framework.monitoring.report import render_text

    session = _monitor_session(file, stage, name, read=True)
    runs = _history(session, name)
    if not runs:
        raise MonitorError(f"no reports of '{name}' yet",
                           hint=f"run the monitor: `mlops monitor run {name}`")
    key = runs[-1]["report"]
    store = _store(session)
    try:
        body = json.loads(store.get(key) or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise MonitorError(f"{key} in the registry is not a JSON report",
                           hint=f"run the monitor again: `mlops monitor run {name}`")
    if html or open_:
        run_id = str(body.get("run_id") or runs[-1].get("run_id") or "latest")
        target = html or Path(".mlops") / "reports" / name / f"{run_id}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(key.replace(".json", ".html")) or b"")
        out.print(f"wrote {target}")
        if open_:
            import webbrowser

            webbrowser.open(target.resolve().as_uri())
    elif output is Output.json:  # report.json as the monitor stored it
        print_json(body)
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


def _message(data: bytes) -> Any:
    import email
    from email import policy

    return email.message_from_bytes(data, policy=policy.default)


@mail_app.command("list")
def mail_list(file: FileOpt = DEFAULT_FILE, stage: StageOpt = None,
              output: OutputOpt = Output.table) -> None:
    """List report e-mails, newest last."""
    box = _Mailbox(open_stage(file, stage, announce=False, read=True))
    if output is Output.json:
        messages = []
        for i in range(1, len(box) + 1):
            msg = _message(box.read(i))
            messages.append({"number": i, "date": msg["Date"], "to": msg["To"],
                             "subject": msg["Subject"], "note": box.note(i)})
        print_json({"where": box.where, "messages": messages})
        return
    table = Table("#", "date", "to", "subject", "note", title=f"messages in {box.where}")
    for i in range(1, len(box) + 1):
        msg = _message(box.read(i))
        table.add_row(str(i), str(msg["Date"]), str(msg["To"]), str(msg["Subject"]),
                      box.note(i))
    out.print(table)


@mail_app.command("show")
def mail_show(number: int, raw: Annotated[bool, typer.Option("--raw")] = False,
              file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Show one e-mail (its text part, or the raw .eml with --raw)."""
    box = _Mailbox(open_stage(file, stage, announce=False, read=True))
    if not 1 <= number <= len(box):
        raise MonitorError(f"no message #{number} (the outbox holds {len(box)})",
                           hint="`mlops mail list` shows their numbers")
    data = box.read(number)
    if raw:
        out.print(data.decode(errors="replace"))
        return
    msg = _message(data)
    out.print(f"Subject: {msg['Subject']}\nTo: {msg['To']}\nDate: {msg['Date']}\n")
    body = msg.get_body(preferencelist=("plain",))
    out.print(body.get_content() if body is not None else "")
    parts = [p.get_content_type() for p in msg.walk()]
    out.print(f"[dim]parts: {', '.join(parts)}[/dim]")
