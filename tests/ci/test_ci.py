"""The generated workflow is valid YAML and runs only commands mlops really has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

from framework.ci import plan_markdown, workflow, write
from framework.cli import app
from framework.plan.planner import Action, Op, Plan


def test_workflow_jobs_and_triggers() -> None:
    doc = yaml.safe_load(workflow(stage="prod", region="eu-west-1"))
    assert set(doc["jobs"]) == {"check", "deploy", "retrain"}
    assert doc[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads `on` as True
    assert doc["permissions"]["id-token"] == "write"


def test_every_mlops_command_in_the_workflow_exists() -> None:
    group = typer.main.get_command(app)
    doc = yaml.safe_load(workflow(stage="prod", region="eu-west-1"))
    runs = [step["run"] for job in doc["jobs"].values() for step in job["steps"]
            if "run" in step and step["run"].startswith("mlops ")]
    assert len(runs) >= 6
    for run in runs:
        words = shlex.split(run)[1:]
        cmd = group
        while words and hasattr(cmd, "commands") and words[0] in cmd.commands:
            cmd = cmd.commands[words.pop(0)]
        assert not hasattr(cmd, "commands"), f"`{run}` names no command"
        options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for word in words:
            if word.startswith("-"):
                assert word in options, f"`{run}`: {cmd.name} has no option {word}"


def test_write_refuses_to_clobber(tmp_path: Path) -> None:
    from framework.errors import MlopsError

    write(tmp_path, "a")
    write(tmp_path, "a")  # same content: fine
    with pytest.raises(MlopsError, match="exists and differs"):
        write(tmp_path, "b")
    write(tmp_path, "b", force=True)


def test_plan_markdown() -> None:
    plan = Plan(project="p", stage="dev", target="local", region="us-east-1",
                account_id="1", state_lineage="", state_serial=0, actions=(
                    Action(Op.update, "function.x", "lambda_function", "memory: 1 → 2 | odd"),
                    Action(Op.noop, "api", "http_api", "up to date")))
    text = plan_markdown(plan)
    assert "**1** to update" in text and "1 unchanged" in text
    assert re.search(r"\| ✏️ update \| `function.x` \| lambda_function \| memory: 1 → 2 \\\| odd",
                     text)
