"""``mlops data export``: an endpoint's captured requests joined with their feedback labels,
as a training set (the model's features + its label column), in CSV or JSON lines."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

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
    workspace,
)
from framework.errors import ConfigError, MlopsError, Problem

data_app = typer.Typer(no_args_is_help=True,
                       help="Production data: captured requests joined with feedback labels.")


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


def flush_local(session: Any) -> None:
    """On the local target, ship the functions' logs and deliver Firehose's buffers now, so
    every request answered so far is in the captures (as ``mlops monitor run`` does)."""
    gateway = session.target.gateway_url
    if not gateway:
        return
    import urllib.request

    flush = urllib.request.Request(f"{gateway}/_mlops/flush", method="POST", data=b"")
    with contextlib.suppress(OSError):
        urllib.request.urlopen(flush, timeout=30).read()


def window_option(text: str, where: str = "--window") -> Any:
    """The window an option names (bad input, exit 2, when it names none)."""
    from framework.data_export import WINDOW_HINT, parse_window

    try:
        return parse_window(text, datetime.now(UTC))
    except ValueError as exc:
        raise ConfigError([Problem(where=where, what=str(exc), hint=WINDOW_HINT)],
                          source="command line") from None


@data_app.command("export")
def export(endpoint: Annotated[str, typer.Argument(help="Endpoint whose traffic to export.")],
           window: Annotated[str, typer.Option(
               help="How far back: 7d, 24h, 90m (ending now), or START..END (ISO, UTC).")]
           = "7d",
           out_file: Annotated[Path | None, typer.Option(
               "--out", help="File to write (default: standard output).")] = None,
           fmt: Annotated[Format, typer.Option("--format", help="csv or jsonl.")] = Format.csv,
           labelled_only: Annotated[bool, typer.Option(
               help="Leave out the rows no feedback label was posted for.")] = False,
           output: OutputOpt = Output.table,
           file: FileOpt = DEFAULT_FILE, stage: StageOpt = None) -> None:
    """Write the endpoint's captured rows of the window, joined by request id with their
    feedback labels, as a training set: the model's features and its label column (empty
    where no label was posted, unless --labelled-only)."""
    from framework.data_export import export as read_export
    from framework.data_export import write_csv, write_file, write_jsonl
    from framework.monitoring.store import S3Store

    ws = workspace(file, stage)
    config = ws.loaded.config
    check_name(endpoint, config.endpoints, what="endpoint", where=f"endpoints.{endpoint}")
    if config.endpoints[endpoint].capture is None:
        raise ConfigError([Problem(
            where=f"endpoints.{endpoint}.capture",
            what="the endpoint records no requests: there is nothing to export",
            hint="add capture: {sample_rate: 1.0} to it and deploy")], source=str(ws.loaded.path))
    if output is Output.json and out_file is None:
        raise ConfigError([Problem(
            where="--out", what="-o json prints a summary on standard output, so the rows need "
                               "a file", hint="add --out FILE")], source="mlops data export")
    span = window_option(window)
    session = open_stage(file, stage, read=True, announce=False, ws=ws)
    if not session.store.bucket_exists():
        raise MlopsError(f"nothing is deployed for {ws.project}/{ws.stage} (its registry bucket "
                         f"{session.bucket} does not exist)", hint="deploy it with `mlops deploy`")
    flush_local(session)
    result, rows = read_export(S3Store(session.target.conn.client("s3"), session.bucket),
                               config, endpoint, span, labelled_only=labelled_only)
    if out_file is None:
        if fmt is Format.csv:
            write_csv(result.columns, rows, sys.stdout)
        else:
            write_jsonl(rows, sys.stdout)
        sys.stdout.flush()
    else:
        write_file(out_file, fmt.value, result.columns, rows)
    for problem in result.problems():
        err.print(f"[yellow]warning:[/yellow] {problem}")
    if output is Output.json:
        print_json({**result.summary(), "file": str(out_file), "format": fmt.value})
        return
    where = str(out_file) if out_file is not None else "standard output"
    kept = ("left out" if labelled_only else "kept, label empty")
    line = (f"exported {result.rows} row(s) of {endpoint} ({result.model}) to {where}: "
            f"{result.labelled} labelled, {result.unlabelled} without a label ({kept}); "
            f"columns: the model's {len(result.columns) - 1} features + '{result.label}'")
    (err if out_file is None else out).print(line)
    if result.rows == 0:
        err.print(f"[yellow]note:[/yellow] no captured rows of {endpoint} between "
                  f"{result.window.to_dict()['start']} and {result.window.to_dict()['end']}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
