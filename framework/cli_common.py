"""What every ``mlops`` command module shares: consoles, the --file/--stage options, and
opening the project (and its stage's target)."""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions

from framework.errors import ConfigError, Problem, TargetUnavailableError

PIPE_WIDTH = 10_000  # tables take the width their cells need when no terminal cuts them


class _Console(Console):
    """Rich's console, except that output going to a pipe or a file is never cut to 80
    columns: a table then takes the width its cells need (``mlops audit | cat``, ``> x.txt``)."""

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if self.is_terminal:  # COLUMNS, which rich also reads, only sizes a terminal here
            return dims
        return ConsoleDimensions(PIPE_WIDTH, dims.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="Path of mlops.yaml.")]
StageOpt = Annotated[str | None, typer.Option("--stage", "-s", help="Stage to act on.")]
DEFAULT_FILE = Path("mlops.yaml")


class Output(StrEnum):
    """How a read prints: a table for people, JSON (stable keys, see README) for scripts."""

    table = "table"
    json = "json"


OutputOpt = Annotated[Output, typer.Option(
    "--output", "-o", help="table, or json (stable keys: see README).")]


def show_progress() -> None:
    """Print each step ``framework.progress.say`` announces on stderr, as it begins."""
    import logging

    from rich.markup import escape

    class _Progress(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            err.print(f"[dim]… {escape(record.getMessage())}[/dim]")

    logger = logging.getLogger("mlops.progress")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(_Progress())


def print_json(data: Any) -> None:
    """One JSON document on stdout, nothing else (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def workspace(file: Path, stage: str | None) -> Any:
    from framework.workflow import Workspace

    return Workspace.open(file, stage)


class LocalNotRunningError(TargetUnavailableError):
    """A read found the stage's local AWS stopped: nothing deployed can be read (exit 8)."""

    exit_code = 8


def open_stage(file: Path, stage: str | None, *, start_local: bool = True,
               announce: bool = True, read: bool = False, ws: Any = None) -> Any:
    """The project connected to its stage's target; ``announce`` says where the local AWS
    answers (on stderr). A ``read`` never starts the local AWS: when it is stopped it raises
    ``LocalNotRunningError``."""
    from framework.workflow import open_session

    ws = ws or workspace(file, stage)
    try:
        opened = open_session(ws, start_local=start_local and not read)
    except TargetUnavailableError:
        from framework import local

        if not read or ws.loaded.target.value != "local" or local.status(ws.local_home):
            raise
        raise LocalNotRunningError(
            f"the local AWS of {ws.project}/{ws.stage} is not running: nothing deployed can "
            "be read", where=str(ws.local_home),
            hint="start it with `mlops local start` (what was deployed is kept), or deploy "
                 "with `mlops deploy`") from None
    if announce and opened.target.gateway_url:
        err.print(f"[dim]local AWS: control plane {opened.target.conn.endpoint_url}, "
                  f"gateway {opened.target.gateway_url}[/dim]")
    return opened


def check_name(name: str, names: Iterable[str], *, what: str, where: str,
               source: str = "mlops.yaml", listed: str = "in mlops.yaml") -> None:
    """Bad input (exit 2) unless ``name`` is one of ``names``: says which close one was
    meant, and lists them all."""
    known = list(names)
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    hint += f"{what}s {listed}: {', '.join(known) or 'none'}"
    raise ConfigError([Problem(where=where, what=f"no {what} named '{name}'", hint=hint)],
                      source=source)
