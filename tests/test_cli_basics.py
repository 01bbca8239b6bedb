"""The CLI's surface: --version, completion, -f on every command."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from framework import __version__
from framework.cli import app

runner = CliRunner()


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mlops {__version__}"


def test_completion_is_offered() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            found += _commands(cmd, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", cmd))
    return found


def test_every_command_taking_the_project_file_takes_it_as_f_and_file() -> None:
    root = typer.main.get_command(app)
    checked = 0
    for name, cmd in _commands(root):
        for param in cmd.params:
            if param.param_type_name != "option":
                continue
            if "--file" in param.opts or "-f" in param.opts:
                assert sorted(param.opts) == ["--file", "-f"], (name, param.opts)
                assert "mlops.yaml" in (param.help or ""), (name, param.help)
                checked += 1
    assert checked > 20


def test_invoke_takes_f_for_the_project_file_and_keeps_c_hidden(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "mlops.yaml"
    for flag in ("-f", "--file", "-c"):
        result = runner.invoke(app, ["invoke", "predict", flag, str(missing), "--data", "{}"])
        assert result.exit_code != 0
        assert "No such option" not in result.output, (flag, result.output)
    helped = runner.invoke(app, ["invoke", "--help"])
    assert "--config" not in helped.stdout and "--input" in helped.stdout


# (typer itself loads pydantic to parse any subcommand's options: not listed)
HEAVY = ("boto3", "botocore", "moto", "numpy", "onnxruntime", "aiohttp", "yaml",
         "framework.workflow", "framework.compile", "framework.config", "framework.plan",
         "framework.local")


def test_help_loads_no_heavy_module() -> None:
    """`mlops --help` imports neither AWS clients, the model runtime nor the compiler: they
    load in the commands that use them."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from framework.cli import app\n"
            "for args in (['--help'], ['models', '--help'], ['monitor', 'run', '--help']):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "", proc.stdout
