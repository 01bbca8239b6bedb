"""The CLI for scripts, against the embedded local AWS: reads never start it, `-o json` on
every read, `mlops url`, and names that are not declared."""

from __future__ import annotations

import json
import re

from framework import local
from framework.cli_common import LocalNotRunningError
from tests.e2e.conftest import Project

READS = [("status",), ("url", "predict"), ("models", "list"), ("models", "show", "diagnosis"),
         ("monitor", "history", "diagnosis-drift"), ("rollout", "status"), ("mail", "list"),
         ("keys", "list", "predict")]


def _reads_say_stopped(project: Project) -> None:
    for args in READS:
        proc = project.mlops(*args, check=False)
        assert proc.returncode == LocalNotRunningError.exit_code == 8, (args, proc)
        text = " ".join(proc.stderr.split())
        assert "is not running: nothing deployed can be read" in text, (args, text)
        assert "mlops local start" in text and "Traceback" not in proc.stderr, (args, text)
        assert local.status(project.root / ".mlops" / "local") is None, args  # not started


def _json(project: Project, *args: str) -> dict:
    proc = project.mlops(*args, "-o", "json")
    return json.loads(proc.stdout)  # stdout holds the document alone


def _doctor_says_stopped(project: Project) -> None:
    """A diagnosis reads too: a stopped local AWS is a warning, and stays stopped."""
    doctor = _json(project, "doctor")
    first = doctor["checks"][0]
    assert (first["name"], first["status"]) == ("local AWS", "warn"), doctor
    assert "mlops local start" in first["hint"] and doctor["counts"]["fail"] == 0
    assert local.status(project.root / ".mlops" / "local") is None


def test_reads_never_start_the_local_aws_and_print_json(project: Project) -> None:
    _reads_say_stopped(project)  # a fresh project: never started
    _doctor_says_stopped(project)
    project.mlops("local", "start")
    undeployed = project.mlops("url", "predict", check=False)
    assert undeployed.returncode == 2 and "url: 1 problem" in undeployed.stderr
    assert "run `mlops deploy` first" in " ".join(undeployed.stderr.split())

    deployed = project.mlops("deploy")
    url = re.search(r"endpoint predict .*: (http://\S+)", deployed.stdout)
    assert url, deployed.stdout

    assert project.mlops("url", "predict").stdout == url.group(1) + "\n"
    wrong = project.mlops("url", "predcit", check=False)
    assert wrong.returncode == 2 and "did you mean 'predict'?" in wrong.stderr

    status = _json(project, "status")
    assert status["project"] == "cancer-dx" and status["stage"] == "dev"
    assert status["target"] == "local" and status["resources"] > 0
    assert status["registry"].startswith("s3://") and status["destroyed_at"] is None
    [endpoint] = status["endpoints"]
    assert {k: endpoint[k] for k in ("name", "route", "url", "version")} == {
        "name": "predict", "route": "POST /diagnosis/predict", "url": url.group(1),
        "version": "1"}

    plan = _json(project, "plan")
    assert plan["counts"]["create"] == 0 and plan["counts"]["no-op"] == len(plan["actions"])
    assert {"op", "id", "kind", "reason", "changes"} <= set(plan["actions"][0])

    models = _json(project, "models", "list")
    assert [m["name"] for m in models["models"]] == ["diagnosis"]
    assert models["models"][0]["versions"] == ["1.0.0"]
    assert models["models"][0]["latest"] == "1.0.0"

    shown = _json(project, "models", "show", "diagnosis")
    assert shown["name"] == "diagnosis" and shown["version"] == "1.0.0"
    assert json.loads(project.mlops("models", "show", "diagnosis", "--json").stdout) == shown
    lineage = _json(project, "models", "lineage", "diagnosis")
    assert lineage["chain"][0]["version"] == "1.0.0"
    assert _json(project, "models", "history", "diagnosis")["model"] == "diagnosis"
    typo = project.mlops("models", "show", "diagnosi", check=False)
    assert typo.returncode == 2
    assert "did you mean 'diagnosis'?" in " ".join(typo.stderr.split())

    assert _json(project, "monitor", "history", "diagnosis-drift") == {
        "monitor": "diagnosis-drift", "runs": []}
    # No traffic yet: the verdict is NO DATA; --fail-on turns the verdicts it names into exit 9.
    passed = project.mlops("monitor", "run", "diagnosis-drift", "--fail-on", "drift,degraded")
    assert "[NO DATA]" in passed.stdout
    failed = project.mlops("monitor", "run", "diagnosis-drift", "--fail-on", "drift",
                           "--fail-on", "no_data", check=False)
    assert failed.returncode == 9, failed
    assert "found no data" in " ".join(failed.stderr.split()) and "Traceback" not in failed.stderr
    assert project.mlops("monitor", "run", "diagnosis-drift", "--fail-on", "any",
                         check=False).returncode == 9
    runs = _json(project, "monitor", "history", "diagnosis-drift")["runs"]
    assert [r["status"] for r in runs] == ["no_data"] * 3
    assert {"run_id", "window", "status", "figures", "report"} <= set(runs[0])
    report = _json(project, "monitor", "report", "diagnosis-drift")
    assert report["run_id"] == runs[-1]["run_id"] and report["status"] == "no_data"

    audit = _json(project, "audit")
    assert audit["records"] and all({"time", "action", "outcome"} <= set(r)
                                    for r in audit["records"])
    assert isinstance(_json(project, "rollout", "status")["rollouts"], list)
    assert _json(project, "mail", "list")["messages"] == []
    assert _json(project, "keys", "list", "predict") == {"endpoint": "predict", "keys": []}
    doctor = _json(project, "doctor")
    assert doctor["counts"]["fail"] == 0
    assert all(set(c) == {"name", "status", "detail", "hint"} for c in doctor["checks"])

    project.mlops("local", "stop")
    _reads_say_stopped(project)  # stopped after a deploy: still not restarted by a read
    _doctor_says_stopped(project)
