"""The retraining loop closed, end to end on the embedded local AWS, with one deploy.

The example is deployed from a git repository (with a bare ``origin``) whose model trains on a
declared CSV (``training.data``). Traffic goes through the endpoint, feedback labels are posted
for most of it, and ``mlops data export`` writes the joined training set. A monitor's retrain
request is then handled by the retrain job of the workflow ``mlops ci init`` writes, its shell
steps (``run:``) run as GitHub's runner runs them, with ``gh`` absent: first under a gate the
new version cannot pass (the request stays pending, the failure recorded, nothing proposed),
then for real (the version, trained on the declared rows plus the labelled production rows,
passes its gates, is registered, the request is done, and a branch with the bumped
``mlops.yaml``, the new artifact and the new training rows is pushed, the pull-request step
saying why it opened none). Last, ``mlops plan``/``deploy`` refuse a declared version below
the deployed one unless ``--allow-downgrade``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from framework import local
from framework.monitoring.actions import request_retrain
from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import S3Store
from tests.e2e.conftest import EXAMPLE, Project, http
from tests.retrain.train_csv import use_csv_training

BRANCH = "mlops/retrain-dev"
GATES = 'gates: {roc_auc: ">=0.97", recall: ">=0.85", p99_latency_ms: "<=50", size_mb: "<=5"}'
# No latency gate: the test judges the loop, not this machine's speed.
LOOSE = 'gates: {roc_auc: ">=0.97", recall: ">=0.85", size_mb: "<=5"}'
IMPOSSIBLE = 'gates: {roc_auc: ">=0.97", recall: ">=0.85", size_mb: "<=0.0001"}'


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def commit_all(root: Path, message: str) -> None:
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", message)
    git(root, "push", "--quiet", "origin", "main")


def job_steps(root: Path) -> tuple[dict[str, str], list[tuple[dict[str, str], str]]]:
    """The workflow's environment and the retrain job's shell steps with their own."""
    doc = yaml.safe_load((root / ".github/workflows/mlops.yml").read_text())
    steps = [({k: str(v) for k, v in (s.get("env") or {}).items() if "${{" not in str(v)},
              str(s["run"])) for s in doc["jobs"]["retrain"]["steps"] if "run" in s]
    return {k: str(v) for k, v in doc["env"].items()}, steps


def run_job(root: Path, tmp: Path) -> list[subprocess.CompletedProcess[str]]:
    """The retrain job's ``run:`` steps, in order, as GitHub's runner runs them (bash -eo
    pipefail, the workflow's and the step's environment, RUNNER_TEMP); a failed step skips
    the next ones unless they run ``if: !cancelled()`` (the pull-request step does). The
    packages are installed already: ``pip install`` is left out. PATH has ``mlops`` and the
    few tools the steps use, and no ``gh``."""
    tools = tmp / "bin"
    if not tools.exists():
        tools.mkdir()
        for name in ("git", "head", "tail"):
            found = shutil.which(name)
            assert found is not None
            (tools / name).symlink_to(found)
    temp = tmp / "runner-temp"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    workflow_env, steps = job_steps(root)
    base = {**os.environ, **workflow_env, "RUNNER_TEMP": str(temp),
            "PATH": f"{tools}{os.pathsep}{Path(sys.executable).parent}"}
    done = []
    for env, script in steps:
        if script.startswith("pip install"):
            continue
        proc = subprocess.run([shutil.which("bash") or "/bin/bash", "--noprofile", "--norc",
                               "-eo", "pipefail", "-c", script], cwd=root,
                              env={**base, **env}, capture_output=True, text=True, timeout=900)
        print(f"$ {script.splitlines()[0]}\n{proc.stdout}{proc.stderr}", file=sys.stderr)
        done.append(proc)
    return done


def test_the_retrain_job_proposes_a_gated_version_trained_on_production_data(
        project: Project, tmp_path: Path) -> None:
    root = project.root
    train_rows = use_csv_training(root)
    project.edit(GATES, LOOSE)
    project.mlops("ci", "init", "--stage", "dev")
    (root / ".gitignore").write_text(".mlops/\n*.out\n")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "config", "user.name", "dev")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "remote", "add", "origin", str(origin))
    commit_all(root, "the example, trained on data/train.csv")
    assert "--with-production 7d --register" in (root / ".github/workflows/mlops.yml").read_text()

    # One deploy; then traffic through the endpoint, and feedback for 15 of its 20 rows.
    project.mlops("deploy")
    url = project.mlops("url", "predict").stdout.strip()
    with open(root / EXAMPLE / "data" / "holdout.csv", newline="") as fh:
        holdout = list(csv.DictReader(fh))[:20]
    labels = []
    for i in range(4):
        batch = holdout[i * 5:(i + 1) * 5]
        body = {"instances": [{k: float(v) for k, v in r.items() if k != "diagnosis"}
                              for r in batch]}
        status, _, answer = http("POST", url, json.dumps(body).encode())
        assert status == 200, answer
        if i < 3:
            labels += [{"request_id": answer["request_id"], "row": j, "label": r["diagnosis"]}
                       for j, r in enumerate(batch)]
    status, _, answer = http("POST", f"{url}/feedback", json.dumps(labels).encode())
    assert status == 202, answer

    # mlops data export: the model's features + its label column, joined by request id.
    exported = project.mlops("data", "export", "predict", "--window", "1h", "--out",
                             "prod.csv.out")
    assert "exported 20 row(s) of predict (diagnosis)" in exported.stdout
    assert "15 labelled, 5 without a label (kept, label empty)" in exported.stdout
    with open(root / "prod.csv.out", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(holdout[0])  # 30 features, then diagnosis
    assert sorted(r["diagnosis"] for r in table) == sorted(
        [r["diagnosis"] for r in holdout[:15]] + [""] * 5)
    assert {r["mean_radius"] for r in table} == {r["mean_radius"] for r in holdout}
    summary = json.loads(project.mlops(
        "data", "export", "predict", "--window", "1h", "--labelled-only", "--format", "jsonl",
        "--out", "prod.jsonl.out", "-o", "json").stdout)
    assert (summary["rows"], summary["labelled"], summary["unlabelled"]) == (15, 15, 5)
    assert summary["label"] == "diagnosis" and summary["unlabelled_kept"] is False
    lines = (root / "prod.jsonl.out").read_text().splitlines()
    assert len(lines) == 15 and all(json.loads(line)["diagnosis"] for line in lines)
    to_stdout = project.mlops("data", "export", "predict", "--window", "1h")
    assert len(to_stdout.stdout.splitlines()) == 21 and "exported 20 row(s)" in to_stdout.stderr
    unknown = project.mlops("data", "export", "predictt", check=False)
    assert unknown.returncode == 2 and "did you mean 'predict'?" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    # The monitor asked for a retraining.
    status_doc = json.loads(project.mlops("status", "-o", "json").stdout)
    bucket = status_doc["registry"].removeprefix("s3://")
    aws = local.status(root / ".mlops" / "local")
    assert aws is not None
    s3 = local.connection(aws, status_doc["region"]).client("s3")
    spec = MonitorSpec(name="diagnosis-drift", project="cancer-dx", stage="dev",
                       endpoint="predict", model="diagnosis", version="1.0.0", bucket=bucket)
    key = str(request_retrain(S3Store(s3, bucket), spec, "run-1",
                              "reports/diagnosis-drift/run-1/report.json")["request"])

    # A version that fails its gates: nothing kept, nothing proposed, the request pending.
    project.edit(LOOSE, IMPOSSIBLE)
    commit_all(root, "a gate no version passes")
    train, propose = run_job(root, tmp_path)
    assert train.returncode == 5, train.stdout + train.stderr
    assert "size_mb" in train.stderr and "failed its gates" in train.stdout
    assert "its retrain request stays pending" in train.stdout
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    assert propose.returncode == 0 and "no new model version to propose" in propose.stdout
    (attempt_key,) = [o["Key"] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix=key.removesuffix(".json") + "/attempts/")["Contents"]]
    attempt = _json(s3, bucket, attempt_key)
    assert attempt["version"] == "1.0.1" and "size_mb" in attempt["failure"]
    assert not _exists(s3, bucket, key.replace(".json", ".done.json"))
    assert not _exists(s3, bucket, "models/diagnosis/1.0.1/metadata.json")

    # Gates a good version passes: trained on the declared rows + the 15 labelled production
    # rows, registered, the request done, the change pushed for review.
    project.edit(IMPOSSIBLE, LOOSE)
    commit_all(root, "the gates as they were")
    train, propose = run_job(root, tmp_path)
    assert train.returncode == 0, train.stdout + train.stderr
    assert "appended 15 production row(s) to data/train.csv (0 already there)" in train.stdout
    reference = f"s3://{bucket}/models/diagnosis/1.0.1/model.onnx"
    assert f"registered diagnosis@1.0.1: {reference}" in train.stdout
    assert propose.returncode == 0, propose.stdout + propose.stderr
    assert (f"::warning::gh (the GitHub CLI) is not installed: pushed {BRANCH}; open a pull "
            "request from it into main") in propose.stdout
    assert git(origin, "log", "-1", "--format=%s", BRANCH).strip() == \
        "mlops: retrained diagnosis 1.0.0 → 1.0.1"
    message = git(origin, "log", "-1", "--format=%b", BRANCH)
    assert f"`{reference}` (`diagnosis@1.0.1`)" in message and key in message
    assert git(origin, "diff", "--name-only", "main", BRANCH).split() == [
        "data/train.csv", f"{EXAMPLE}/artifacts/model.onnx", "mlops.yaml"]
    assert "    version: 1.0.1 " in git(origin, "show", f"{BRANCH}:mlops.yaml")
    assert len(git(origin, "show", f"{BRANCH}:data/train.csv").splitlines()) == \
        train_rows + 1 + 15
    done = _json(s3, bucket, key.replace(".json", ".done.json"))
    assert (done["version"], done["registered"], done["attempts"]) == ("1.0.1", reference, 2)
    assert all(g["passed"] for g in done["gates"])
    assert _json(s3, bucket, "models/diagnosis/1.0.1/metadata.json")["sha256"] == \
        done["sha256"]
    assert "no pending retrain requests" in project.mlops("retrain", "--pending").stdout

    # Declaring a version below the deployed one is refused unless it is meant.
    git(root, "switch", "--quiet", "main")  # the job's checkout moved to the proposal
    project.edit("    version: 1.0.0 ", "    version: 0.9.0 ")
    refused = project.mlops("plan", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "models.diagnosis.version: 0.9.0 is below 1.0.0, deployed to cancer-dx/dev" in \
        refused.stderr
    assert "--allow-downgrade" in refused.stderr and "Traceback" not in refused.stderr
    assert project.mlops("deploy", check=False).returncode == 2
    allowed = project.mlops("plan", "--allow-downgrade")
    assert "downgrade allowed: mlops.yaml declares diagnosis 0.9.0, below 1.0.0" in \
        allowed.stderr


def _json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return found


def _exists(s3: Any, bucket: str, key: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))
