"""What every ``mlops`` command module shares: consoles, the --file/--stage options, and
opening the project (and its stage's target)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="Path of mlops.yaml.")]
StageOpt = Annotated[str | None, typer.Option("--stage", "-s", help="Stage to act on.")]
DEFAULT_FILE = Path("mlops.yaml")


def workspace(file: Path, stage: str | None) -> Any:
    from framework.workflow import Workspace

    return Workspace.open(file, stage)


def open_stage(file: Path, stage: str | None, *, start_local: bool = True,
            announce: bool = True) -> Any:
    """The project connected to its stage's target; ``announce`` says where the local AWS
    answers (on stderr)."""
    from framework.workflow import open_session

    opened = open_session(workspace(file, stage), start_local=start_local)
    if announce and opened.target.gateway_url:
        err.print(f"[dim]local AWS: control plane {opened.target.conn.endpoint_url}, "
                  f"gateway {opened.target.gateway_url}[/dim]")
    return opened
