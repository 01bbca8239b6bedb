"""Bad input and faults: nothing half-done is lost, nothing is deployed from bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from framework import local, workflow
from framework.compile import names
from framework.errors import StalePlanError, StateLockedError
from tests.e2e.conftest import Project, http
from tests.e2e.test_deploy import session_for, url_of

# Runs in its own process, as `mlops deploy` would: apply the plan, and stop the local AWS
# after the second action, so the control plane stops answering half-way through.
HALF_WAY = """
import sys
from framework import local, workflow
from framework.errors import DeployError

session = workflow.open_session(workflow.Workspace.open(sys.argv[1]))
plan = workflow.plan(session)
done = []

def stop_after_two(action, phase):
    if phase == "done":
        done.append(action.id)
        if len(done) == 2:
            local.stop(session.ws.local_home)

try:
    workflow.apply(session, plan, on_progress=stop_after_two)
except DeployError as exc:
    print(exc.render())
    print("DONE", " ".join(done), "TOTAL", len(plan.changes))
    sys.exit(1)
"""


def test_control_plane_stopping_mid_apply(project: Project) -> None:
    project.mlops("deploy")
    url = url_of(project)
    project.use_model(7)
    project.edit("version: 1.0.0", "version: 1.1.0")

    proc = subprocess.run([sys.executable, "-c", HALF_WAY, str(project.yaml)],
                          capture_output=True, text=True, timeout=180, cwd=project.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    done_line = proc.stdout.splitlines()[-1].split()
    # the two before the stop, and any that were in flight and finished before it
    done, total = done_line[1:-2], int(done_line[-1])
    assert len(done) >= 2 and f"{len(done)} of {total} changes were applied" in proc.stdout
    cached = json.loads((project.root / ".mlops" / "state" / "cancer-dx" / "dev.json").read_text())
    assert set(done) <= set(cached["resources"])
    assert cached["resources"]["alias.predict"]["outputs"]["version"] == "1"

    # Back up: the alias never moved, so the old version keeps serving.
    local.start(project.root / ".mlops" / "local")
    status, _, body = http("POST", url, project.sample())
    assert status == 200 and body["version"] == "1.0.0"

    # Re-running finishes the job (the lock of the dead deploy is taken over).
    finish = project.mlops("deploy")
    assert "deployed" in finish.stdout
    assert "took over the lock" in finish.stderr
    status, _, body = http("POST", url, project.sample())
    assert status == 200 and body["version"] == "1.1.0"
    assert workflow.plan(session_for(project)).changes == ()


def test_second_deploy_is_refused_while_one_holds_the_lock(project: Project) -> None:
    project.mlops("deploy")
    project.edit("memory: 1024", "memory: 1536")
    session = session_for(project)
    holder = {"actor": "arn:aws:iam::123456789012:user/alice", "host": "build-7",
              "pid": 4242, "since": "2026-11-27T10:00:00Z", "command": "mlops deploy"}
    session.target.conn.client("s3").put_object(
        Bucket=session.bucket, Key=names.lock_key("cancer-dx", "dev"),
        Body=json.dumps(holder).encode())
    proc = project.mlops("deploy", check=False)
    assert proc.returncode == StateLockedError.exit_code
    assert "another deploy of cancer-dx/dev is running" in proc.stderr
    assert "by arn:aws:iam::123456789012:user/alice" in proc.stderr
    assert "pid 4242 on build-7" in proc.stderr
    with pytest.raises(StateLockedError):
        workflow.apply(session, workflow.plan(session))
    project.mlops("unlock")
    project.mlops("deploy")


def test_lock_of_a_live_process_on_this_host_is_respected(project: Project) -> None:
    project.mlops("deploy")
    session = session_for(project)
    holder = {"actor": "me", "host": socket.gethostname(), "pid": os.getppid(),
              "since": "now", "command": "mlops deploy"}
    session.target.conn.client("s3").put_object(
        Bucket=session.bucket, Key=names.lock_key("cancer-dx", "dev"),
        Body=json.dumps(holder).encode())
    project.edit("memory: 1024", "memory: 1536")
    proc = project.mlops("deploy", check=False)
    assert proc.returncode == StateLockedError.exit_code


def test_saved_plan_is_applied_as_reviewed_and_refused_when_stale(project: Project) -> None:
    project.mlops("deploy")
    project.edit("memory: 1024", "memory: 2048")
    project.mlops("plan", "-o", "reviewed.json")
    project.edit("memory: 2048", "memory: 3008")  # edited after review: not in the plan
    project.mlops("deploy", "reviewed.json")
    lam = session_for(project).target.conn.client("lambda")
    cfg = lam.get_function_configuration(FunctionName="cancer-dx-dev-predict")
    assert cfg["MemorySize"] == 2048
    # The state moved since the plan: applying it again is refused.
    proc = project.mlops("deploy", "reviewed.json", check=False)
    assert proc.returncode == StalePlanError.exit_code
    assert "run `mlops plan` again" in proc.stderr


def test_bad_config_deploys_nothing(project: Project) -> None:
    project.edit("memory: 1024", "memroy: 1024")
    proc = project.mlops("deploy", check=False)
    assert proc.returncode == 2
    assert "memroy" in proc.stderr and "memory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project.root / ".mlops" / "state" / "cancer-dx" / "dev.json").exists()


def test_missing_artifact_is_reported_with_exit_2(project: Project) -> None:
    (project.root / "examples/breast_cancer/artifacts/model.onnx").unlink()
    proc = project.mlops("validate", check=False)
    assert proc.returncode == 2
    assert "models.diagnosis.artifact" in proc.stderr


def test_onnx_inputs_disagreeing_with_features_are_reported(project: Project) -> None:
    project.edit("      - {name: mean_radius, type: float, min: 0}\n", "")
    proc = project.mlops("deploy", check=False)
    assert proc.returncode == 2
    assert "models.diagnosis" in proc.stderr and "30" in proc.stderr
    assert not (project.root / ".mlops" / "state" / "cancer-dx" / "dev.json").exists()


def test_state_and_endpoint_survive_a_local_restart(project: Project) -> None:
    project.mlops("deploy")
    url = url_of(project)
    project.mlops("local", "stop")
    assert project.mlops("local", "status", check=False).returncode == 1
    project.mlops("local", "start")
    status, _, body = http("POST", url, project.sample())
    assert status == 200 and body["version"] == "1.0.0"
    assert workflow.plan(session_for(project)).changes == ()
