"""Progressive delivery on the embedded local AWS: a canary completes under traffic; a
candidate that crashes, or is slow, is rolled back by itself — audited and announced."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from framework import workflow
from tests.e2e.badmodels import constant, crashing, slow
from tests.e2e.conftest import Project, http
from tests.e2e.test_deploy import session_for, url_of

GATES_LINE = re.compile(r"    gates: \{[^\n]*\}\n")


def canary(project: Project, watch: str, steps: str = "[50, 100]", every: str = "2s") -> None:
    project.edit("strategy: all_at_once", "strategy: canary")
    project.edit("steps: [10, 50, 100]", f"steps: {steps}")
    project.edit("every: 15s", f"every: {every}")
    text = project.yaml.read_text()
    text = re.sub(r"      watch: \{[^\n]*\}", f"      watch: {watch}", text)
    project.yaml.write_text(text)


def without_gates(project: Project) -> None:
    project.yaml.write_text(GATES_LINE.sub("", project.yaml.read_text()))


def first_then_candidate(project: Project, *, seed: int | None = None,
                         make: Callable[[Path, Path], None] | None = None) -> str:
    """Deploy 1.0.0, then declare 1.1.0 with another seed's model or the model changed by
    ``make``; returns the endpoint's URL."""
    project.mlops("deploy")
    url = url_of(project)
    if seed is not None:
        project.use_model(seed)
    if make is not None:
        artifact = project.root / "examples/breast_cancer/artifacts/model.onnx"
        make(artifact, artifact)
    project.edit("version: 1.0.0", "version: 1.1.0")
    return url


def deploy_under_traffic(project: Project, url: str, limit: float = 120,
                         ) -> tuple[subprocess.CompletedProcess[str], Counter[str]]:
    """Run `mlops deploy` while sending single-row requests; the versions that answered."""
    proc = subprocess.Popen([sys.executable, "-m", "framework.cli", "deploy"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: Counter[str] = Counter()  # "version:status" → count, in arrival order
    body = project.sample()
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < limit:
        status, headers, _ = http("POST", url, body)
        seen[f"{headers.get('x-mlops-executed-version')}:{status}"] += 1
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), seen


def rollout_audit(project: Project) -> list[dict[str, object]]:
    return [r for r in session_for(project).audit.read_local()
            if str(r.get("action", "")).startswith("rollout")]


def test_canary_shifts_traffic_in_steps_and_completes(project: Project) -> None:
    canary(project, "{error_rate: 0.05, min_requests: 5}")
    url = first_then_candidate(project, seed=7)
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gates of diagnosis" in done.stdout
    assert "completed" in done.stdout
    # Both versions answered while the traffic moved; no errors.
    assert seen["1:200"] > 0 and seen["2:200"] > 0, seen
    assert all(key.endswith(":200") for key in seen), seen
    status, headers, body = http("POST", url, project.sample())
    assert headers["x-mlops-executed-version"] == "2" and body["version"] == "1.1.0"
    events = [r["action"] for r in rollout_audit(project)]
    assert events == ["rollout started", "rollout advanced", "rollout completed"]
    # The deploy state knows what serves now: a new plan is empty.
    assert workflow.plan(session_for(project)).changes == ()
    state = session_for(project).store.load()
    assert state.resources["alias.predict"].outputs["version"] == "2"


def test_crashing_candidate_is_rolled_back(project: Project) -> None:
    canary(project, "{error_rate: 0.05, min_requests: 5}", every="30s")
    without_gates(project)  # gates would have stopped it before any traffic
    url = first_then_candidate(project, make=crashing)
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode != 0
    assert "rolled_back" in done.stdout and "error rate" in done.stdout
    assert seen["2:500"] > 0, seen  # some requests hit the candidate before the rollback
    status, headers, body = http("POST", url, project.sample())
    assert status == 200 and headers["x-mlops-executed-version"] == "1"
    assert body["version"] == "1.0.0"
    audit = rollout_audit(project)
    assert audit[-1]["action"] == "rollout rolled back"
    assert "error rate" in str(audit[-1]["reason"])
    mails = [r for r in session_for(project).audit.read_local() if r.get("kind") == "email"]
    assert mails and mails[-1]["outcome"] == "succeeded"
    assert mails[-1]["after"]["recipients"] == ["oncology-ops@example.com"]


def test_slow_candidate_is_rolled_back(project: Project) -> None:
    canary(project, "{error_rate: 0.05, p99_latency_ms: 15, min_requests: 5}", every="30s")
    without_gates(project)
    url = first_then_candidate(project, make=slow)
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode != 0
    assert "p99 latency" in done.stdout, done.stdout
    assert seen["2:200"] > 0
    status, headers, _ = http("POST", url, project.sample())
    assert status == 200 and headers["x-mlops-executed-version"] == "1"


def test_failed_gate_stops_the_deploy_before_any_traffic(project: Project) -> None:
    url = first_then_candidate(project, make=slow)
    project.edit('p99_latency_ms: "<=50"', 'p99_latency_ms: "<=15"')
    proc = project.mlops("deploy", check=False)
    assert proc.returncode == 5
    assert "p99_latency_ms" in proc.stdout and "FAIL" in proc.stdout
    status, headers, body = http("POST", url, project.sample())
    assert body["version"] == "1.0.0" and headers["x-mlops-executed-version"] == "1"
    lam = session_for(project).target.conn.client("lambda")
    assert len(lam.list_versions_by_function(FunctionName="cancer-dx-dev-predict")
               ["Versions"]) == 2  # $LATEST and 1: nothing new was published


def test_interrupted_rollout_resumes(project: Project) -> None:
    canary(project, "{error_rate: 0.05, min_requests: 0}", steps="[50, 100]", every="3s")
    url = first_then_candidate(project, seed=7)
    started = project.mlops("deploy", "--no-wait")
    assert "running" in started.stdout
    assert http("POST", url, project.sample())[0] == 200
    time.sleep(3.5)
    resumed = project.mlops("rollout", "resume")
    assert "completed" in resumed.stdout
    _, headers, _ = http("POST", url, project.sample())
    assert headers["x-mlops-executed-version"] == "2"
    status = project.mlops("rollout", "status")
    assert "completed" in status.stdout


def test_abort_returns_traffic(project: Project) -> None:
    canary(project, "{error_rate: 0.05, min_requests: 0}", steps="[50, 100]", every="1h")
    url = first_then_candidate(project, seed=7)
    project.mlops("deploy", "--no-wait")
    aborted = project.mlops("rollout", "abort", "predict", "--reason", "smoke test failed")
    assert "rolled_back" in aborted.stdout and "smoke test failed" in aborted.stdout
    for _ in range(10):
        _, headers, _ = http("POST", url, project.sample())
        assert headers["x-mlops-executed-version"] == "1"


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


def test_candidate_whose_outputs_drift_is_rolled_back(project: Project) -> None:
    canary(project, "{error_rate: 0.05, min_requests: 5, drift: true}", steps="[50, 100]",
           every="30s")
    without_gates(project)
    url = first_then_candidate(project, make=constant)
    # The sample request holds a malignant and a benign case: the stable version answers
    # half and half, the candidate always the same.
    done, _ = deploy_under_traffic(project, url)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "drift" in done.stdout
    _, headers, _ = http("POST", url, project.sample())
    assert headers["x-mlops-executed-version"] == "1"


def shadow(project: Project, watch: str, every: str = "3s") -> None:
    project.edit("strategy: all_at_once", "strategy: shadow")
    project.edit("every: 15s", f"every: {every}")
    project.yaml.write_text(re.sub(r"      watch: \{[^\n]*\}", f"      watch: {watch}",
                                   project.yaml.read_text()))


def test_shadow_candidate_sees_traffic_but_never_answers_then_takes_over(
        project: Project) -> None:
    shadow(project, "{error_rate: 0.05, min_requests: 10, shadow_agreement: 0.9}")
    url = first_then_candidate(project, seed=7)
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout
    assert seen["1:200"] > 0 and set(seen) <= {"1:200", "2:200"}
    # Callers met version 1 first, then version 2: never a mix (Counter keeps arrival order).
    assert list(seen)[0] == "1:200"
    status = project.mlops("rollout", "status").stdout
    assert "healthy over" in status, status  # judged on mirrored requests, agreement high
    _, headers, body = http("POST", url, project.sample())
    assert headers["x-mlops-executed-version"] == "2" and body["version"] == "1.1.0"
    # The candidate's answers to the mirrored requests were captured under its version.
    metrics = urllib.request.urlopen(url.split("/", 3)[0] + "//" + url.split("/")[2]
                                     + "/metrics").read().decode()
    assert re.search(r'mlops_shadow_compared_total\{endpoint="predict",version="2"\} [1-9]',
                     metrics), metrics


def test_shadow_candidate_that_disagrees_is_rolled_back(project: Project) -> None:
    shadow(project, "{error_rate: 0.05, min_requests: 10, shadow_agreement: 0.9}",
           every="30s")
    without_gates(project)
    url = first_then_candidate(project, make=constant)
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "shadow agreement" in done.stdout
    assert set(seen) == {"1:200"}  # the candidate never answered a caller


def test_candidate_that_rejects_what_callers_send_is_rolled_back(project: Project) -> None:
    # 2.0.0 narrows mean_radius to at most 10 (a breaking change a major bump allows); the
    # callers keep sending larger tumours, which the candidate answers with 422.
    canary(project, "{error_rate: 0.05, invalid_rate: 0.2, min_requests: 5}", every="30s")
    project.mlops("deploy")
    url = url_of(project)
    project.use_model(7)
    project.edit("version: 1.0.0", "version: 2.0.0")
    project.edit("{name: mean_radius, type: float, min: 0}",
                 "{name: mean_radius, type: float, min: 0, max: 10}")
    # The hold-out set has larger tumours too: the metric gates say so and stop the deploy.
    gated = project.mlops("deploy", check=False)
    assert gated.returncode == 5
    assert "does not fit the input contract" in gated.stderr + gated.stdout
    without_gates(project)  # ship it anyway, to see the rollout catch it
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "invalid-input rate" in done.stdout
    assert seen["2:422"] > 0, seen
    _, headers, _ = http("POST", url, project.sample())
    assert headers["x-mlops-executed-version"] == "1"


def test_blue_green_switches_at_once_and_keeps_the_old_version_ready(project: Project) -> None:
    project.edit("strategy: all_at_once", "strategy: blue_green")
    project.edit("every: 15s", "every: 2s")
    url = first_then_candidate(project, seed=7)
    done, seen = deploy_under_traffic(project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout
    assert list(seen)[0] == "1:200" and seen["2:200"] > 0 and set(seen) <= {"1:200", "2:200"}
    events = [r["action"] for r in rollout_audit(project)]
    assert events == ["rollout started", "rollout completed"]
