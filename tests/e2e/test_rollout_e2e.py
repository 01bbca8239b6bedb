"""Progressive delivery on the embedded local AWS, through CodeDeploy: the plan starts a
deployment of the endpoint's alias and the local AWS's CodeDeploy runs it — the pre-traffic
hook checks the new version's gates on the hold-out data, the weights move step by step
(canary, linear) or at once after the check (blue/green); a candidate that crashes is rolled
back by the daemon even when the deploying command was killed; a candidate that passes the
check but breaches an alarm under traffic is stopped by CodeDeploy on that alarm and rolled
back; `mlops rollout abort` stops a deployment and gives the traffic back."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framework import workflow
from tests.e2e.badmodels import crashing, slow
from tests.e2e.conftest import Project, http
from tests.e2e.test_deploy import session_for, url_of

FUNCTION = "cancer-dx-dev-predict"
GATES_LINE = re.compile(r"    gates: \{[^\n]*\}\n")


def without_gates(project: Project) -> None:
    """No gates before the deploy (they would stop a broken model before any deployment);
    the hold-out data stays, so the pre-traffic check still runs the new version on it."""
    project.yaml.write_text(GATES_LINE.sub("", project.yaml.read_text()))


def rollout(project: Project, strategy: str = "canary", steps: str = "[50, 100]",
            every: str = "3s", watch: str = "{error_rate: 0.05, min_requests: 0}",
            increment: int | None = None) -> None:
    project.edit("strategy: all_at_once", f"strategy: {strategy}")
    project.edit("steps: [10, 100]", f"steps: {steps}")
    project.edit("every: 15s", f"every: {every}")
    text = re.sub(r"      watch: \{[^\n]*\}", f"      watch: {watch}", project.yaml.read_text())
    if increment is not None:
        text = text.replace(f"strategy: {strategy}", f"strategy: {strategy}\n"
                                                    f"      increment: {increment}", 1)
    project.yaml.write_text(text)


def first_then_candidate(project: Project, *, seed: int | None = None,
                         make: Callable[[Path, Path], None] | None = None,
                         version: str = "1.1.0") -> str:
    """Deploy 1.0.0, then declare ``version`` with another seed's model or the model changed
    by ``make``; returns the endpoint's URL."""
    project.mlops("deploy")
    url = url_of(project)
    if seed is not None:
        project.use_model(seed)
    if make is not None:
        artifact = project.root / "examples/breast_cancer/artifacts/model.onnx"
        make(artifact, artifact)
    project.edit("version: 1.0.0", f"version: {version}")
    return url


def deploy_under_traffic(project: Project, url: str, *args: str, limit: float = 180,
                         ) -> tuple[subprocess.CompletedProcess[str], Counter[str]]:
    """Run `mlops deploy` while sending requests; the versions that answered, in order."""
    proc = subprocess.Popen([sys.executable, "-m", "framework.cli", "deploy", *args],
                            cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen: Counter[str] = Counter()  # "version:status" → count, in arrival order
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < limit:
        status, headers, _ = http("POST", url, project.sample())
        seen[f"{headers.get('x-mlops-executed-version')}:{status}"] += 1
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), seen


def codedeploy(project: Project) -> Any:
    return session_for(project).target.conn.client("codedeploy")


def deployments(project: Project) -> list[dict[str, Any]]:
    """The stage's deployments, oldest first, as CodeDeploy reports them."""
    cd = codedeploy(project)
    ids = cd.list_deployments(applicationName="cancer-dx-dev",
                              deploymentGroupName=FUNCTION)["deployments"]
    found = [cd.get_deployment(deploymentId=i)["deploymentInfo"] for i in ids]
    return sorted(found, key=lambda d: d["createTime"])


def served(url: str, project: Project, times: int = 5) -> set[str]:
    return {http("POST", url, project.sample())[1]["x-mlops-executed-version"]
            for _ in range(times)}


def until(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_canary_shifts_traffic_in_steps_after_the_pre_traffic_check(project: Project) -> None:
    rollout(project, steps="[50, 100]", every="4s")
    url = first_then_candidate(project, seed=7)
    planned = project.mlops("plan").stdout
    assert "start canary 50% for 4s, then 100%, after a pre-traffic check: diagnosis 1.0.0 → " \
           "1.1.0" in " ".join(planned.split()), planned
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "50% on 1.1.0" in done.stdout, done.stdout
    assert "completed" in done.stdout
    # Both versions answered while the traffic moved; no errors; version 2 serves now.
    assert seen["1:200"] > 0 and seen["2:200"] > 0, seen
    assert all(key.endswith(":200") for key in seen), seen
    assert served(url, project) == {"2"}
    (deployment,) = deployments(project)
    assert deployment["status"] == "Succeeded" and deployment["creator"] == "user"
    # The hook ran the new version's gates on the hold-out data, before any traffic.
    status = project.mlops("rollout", "status").stdout
    assert "pre-traffic check: Succeeded" in status and "passed 2 gate(s)" in status, status
    assert "BeforeAllowTraffic: Succeeded" in status and "AllowTraffic: Succeeded" in status
    # The deploy state records what serves: a new plan is empty.
    state = session_for(project).store.load()
    assert state.resources["alias.predict"].outputs["version"] == "2"
    assert state.resources["deployment.predict"].outputs["status"] == "Succeeded"
    assert workflow.plan(session_for(project)).changes == ()


def test_linear_then_blue_green(project: Project) -> None:
    rollout(project, strategy="linear", every="2s", increment=40)
    url = first_then_candidate(project, seed=7)
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    for share in ("40%", "80%"):
        assert f"{share} on 1.1.0" in done.stdout, done.stdout
    assert seen["2:200"] > 0 and served(url, project) == {"2"}
    # Blue/green: nothing on the new version until the check passed, then all of it at once.
    project.edit("strategy: linear", "strategy: blue_green")
    project.use_model(42)
    project.edit("version: 1.1.0", "version: 1.2.0")
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout
    assert list(seen)[0] == "2:200" and set(seen) <= {"2:200", "3:200"}, seen
    assert served(url, project) == {"3"}
    last = deployments(project)[-1]
    assert last["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert last["status"] == "Succeeded"


def test_a_crashing_candidate_is_rolled_back_after_the_deployer_was_killed(
        project: Project) -> None:
    rollout(project, steps="[50, 100]", every="30s")
    without_gates(project)
    url = first_then_candidate(project, make=crashing)
    proc = subprocess.Popen([sys.executable, "-m", "framework.cli", "deploy"],
                            cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    said = []
    for line in proc.stdout:  # until the deployment has started
        said.append(line)
        if "CodeDeploy deployment d-" in line:
            break
    else:
        raise AssertionError("".join(said))
    os.killpg(proc.pid, signal.SIGKILL)  # the deploying machine disappears
    proc.wait(timeout=30)
    # The daemon's CodeDeploy goes on: the hook finds the new version crashing, and the
    # deployment is failed and rolled back before any caller met it.
    done = until(lambda: [d for d in deployments(project) if d["creator"] == "user"
                          and d["status"] in ("Failed", "Stopped")], "the rollback")
    assert done[0]["errorInformation"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert done[0]["rollbackInfo"]["rollbackDeploymentId"]
    assert served(url, project) == {"1"}
    # AWS tells the monitor's recipients, with no mlops command run since the kill:
    # CodeDeploy's FAILURE event matches the stage's rule, whose notifier sends the e-mail.
    outbox = project.root / ".mlops" / "local" / "outbox"
    (eml,) = until(lambda: sorted(outbox.glob("*.eml")), "the [ROLLBACK] e-mail")
    mail = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert mail["Subject"] == ("[ROLLBACK] cancer-dx/dev predict: 1.1.0 rolled back to 1.0.0"), \
        mail["Subject"]
    assert mail["To"] == "oncology-ops@example.com"
    assert mail["X-Mlops-Rollout"] == f"predict:rolled_back:{done[0]['deploymentId']}"
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "the pre-traffic check failed" in text and "failed on hold-out rows 1-1" in text, text
    assert f"rolled back by {done[0]['rollbackInfo']['rollbackDeploymentId']}" in text
    assert "BeforeAllowTraffic: Failed" in text
    status = project.mlops("rollout", "status").stdout
    assert "rolled_back" in status and "the pre-traffic check failed" in status, status
    assert "failed on hold-out rows 1-1" in status
    # The deploy state learns it from CodeDeploy (the next deploy's plan, or resume); the
    # command sends no second e-mail.
    resumed = project.mlops("rollout", "resume", check=False)
    assert resumed.returncode == 6, resumed.stdout + resumed.stderr
    assert "e-mailed to oncology-ops@example.com by the stage's notifier" in resumed.stdout, \
        resumed.stdout
    state = session_for(project).store.load()
    assert state.resources["alias.predict"].outputs["version"] == "1"
    assert state.resources["deployment.predict"].outputs["status"] == "Failed"
    assert sorted(outbox.glob("*.eml")) == [eml]


def test_an_alarm_under_traffic_stops_the_deployment_and_rolls_it_back(
        project: Project) -> None:
    # A candidate about 27 ms slower a request than the serving version: the pre-traffic check
    # (hold-out gates, no latency gate) passes it; its p99-latency alarm, over the one-minute
    # steps of a linear rollout, does not.
    rollout(project, strategy="linear", every="1m", increment=34,
            watch="{error_rate: 0.05, p99_latency_ms: 15, min_requests: 0}")
    without_gates(project)
    url = first_then_candidate(project, make=slow)
    done, seen = deploy_under_traffic(project, url, limit=300)
    assert done.returncode == 6, done.stdout + done.stderr
    assert seen["2:200"] > 0, seen  # the candidate answered callers before the alarm
    (deployment, rollback) = deployments(project)
    assert deployment["status"] == "Stopped", deployment
    info = deployment["errorInformation"]
    assert info["code"] == "ALARM_ACTIVE", info
    assert "cancer-dx-dev-predict-1.1.0-p99-latency" in info["message"], info
    assert rollback["creator"] == "codeDeployRollback"
    [alarm] = session_for(project).target.conn.client("cloudwatch").describe_alarms(
        AlarmNames=["cancer-dx-dev-predict-1.1.0-p99-latency"])["MetricAlarms"]
    assert alarm["StateValue"] == "ALARM", alarm
    assert alarm["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints")
    status = project.mlops("rollout", "status").stdout
    assert "rolled_back" in status and "p99-latency" in status, status
    assert served(url, project) == {"1"}


def test_abort_rolls_back_and_status_follows_codedeploy(project: Project) -> None:
    rollout(project, steps="[50, 100]", every="1h")
    url = first_then_candidate(project, seed=7)
    started = project.mlops("deploy", "--no-wait")
    assert "CodeDeploy deployment d-" in started.stdout, started.stdout
    until(lambda: served(url, project, 20) == {"1", "2"}, "the 50% step")
    [rec] = json.loads(project.mlops("rollout", "status", "-o", "json").stdout)["rollouts"]
    assert rec["status"] == "running" and rec["weight"] == 50
    assert rec["steps"] == [{"weight": 50}, {"weight": 100}]
    aborted = project.mlops("rollout", "abort", "predict", "--reason", "smoke test failed")
    assert "rolled_back" in aborted.stdout and "smoke test failed" in aborted.stdout
    assert served(url, project, 10) == {"1"}
    (deployment, rollback) = deployments(project)
    assert deployment["status"] == "Stopped"
    assert deployment["errorInformation"]["code"] == "MANUAL_STOP"
    assert rollback["creator"] == "codeDeployRollback"
    state = session_for(project).store.load()
    assert state.resources["alias.predict"].outputs["version"] == "1"


def test_a_step_that_advanced_without_traffic_is_said_and_audited(project: Project) -> None:
    rollout(project, steps="[50, 100]", every="3s",
            watch="{error_rate: 0.05, min_requests: 20}")
    first_then_candidate(project, seed=7)
    deployed = project.mlops("deploy")  # no request meets the candidate while traffic moves
    said = deployed.stdout + deployed.stderr
    assert "CloudWatch's count of the requests 1.1.0 answered" in said, said
    # (the pre-traffic check's readiness call is the one request it may have answered)
    assert re.search(r"the 50% step advanced on time without being judged: not enough "
                     r"traffic: [01] of 20 requests needed to judge", said), said
    [judged] = [r for r in session_for(project).audit.read_local()
                if r.get("kind") == "rollout" and r.get("action") == "judge"]
    assert judged["outcome"] == "unjudged" and judged["command"] == "mlops deploy"
    assert judged["after"]["requests"] < 20 and judged["after"]["min_requests"] == 20
    status = project.mlops("rollout", "status").stdout
    assert "advanced on time without being judged" in status, status


def test_failed_gate_stops_the_deploy_before_any_traffic(project: Project) -> None:
    url = first_then_candidate(project, make=slow)
    project.edit('p99_latency_ms: "<=50"', 'p99_latency_ms: "<=15"')
    proc = project.mlops("deploy", check=False)
    assert proc.returncode == 5
    assert "p99_latency_ms" in proc.stdout and "FAIL" in proc.stdout
    status, headers, body = http("POST", url, project.sample())
    assert body["version"] == "1.0.0" and headers["x-mlops-executed-version"] == "1"
    lam = session_for(project).target.conn.client("lambda")
    assert len(lam.list_versions_by_function(FunctionName=FUNCTION)
               ["Versions"]) == 2  # $LATEST and 1: nothing new was published


def test_a_memory_change_takes_all_traffic_at_once(project: Project) -> None:
    rollout(project, steps="[50, 100]", every="1h")
    project.mlops("deploy")
    url = url_of(project)
    project.edit("memory: 1024", "memory: 1536")  # same model, same code: nothing to judge
    moved = project.mlops("deploy")
    assert "no model or code change" in moved.stdout, moved.stdout
    assert "takes all traffic at once" in moved.stdout
    assert served(url, project) == {"2"}
    (deployment,) = deployments(project)
    assert deployment["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert deployment["status"] == "Succeeded"


def test_retrain_registers_next_version_with_lineage_and_ships_it(project: Project) -> None:
    project.mlops("deploy")
    url = url_of(project)
    done = project.mlops("retrain", "diagnosis", "--param", "seed=7", "--deploy")
    assert "1.0.0 → 1.0.1" in done.stdout and "gates of diagnosis" in done.stdout
    status, _, body = http("POST", url, project.sample())
    assert status == 200 and body["version"] == "1.0.1"
    lineage = project.mlops("models", "lineage", "diagnosis@1.0.1")
    assert "1.0.0" in lineage.stdout
    assert "version: 1.0.1" in project.yaml.read_text()
