"""The registry from the CLI on the embedded local AWS: register, promote under approvals,
serve NAME@production, roll back, refuse a tampered version, history, audit, card, reproduce."""

from __future__ import annotations

import re
import shutil
import time

import pytest

from tests.e2e.conftest import EXAMPLE, REPO, Project, http
from tests.e2e.test_deploy import session_for, url_of

TRAINING = """    training:
      command: python examples/breast_cancer/train.py --out {out} --seed {seed}
      params: {seed: 42}
      metrics: artifacts/metrics.json
      data: examples/breast_cancer/data/reference.csv
    intended_use: Decision support for clinicians reading fine-needle aspirate reports.
    limitations: [Trained on 569 Wisconsin cases only]
    approvals:
      production: {required: 1, approvers: [dr-house]}
"""


def drop_declared_training(project: Project) -> None:
    """The example declares its own training block; these tests declare a fuller one."""
    text = project.yaml.read_text()
    block = r"    # How to train it again[^\n]*\n    training:\n(      [^\n]*\n)+"
    project.yaml.write_text(re.sub(block, "", text))


def served_version(project: Project) -> str:
    status, _, body = http("POST", url_of(project), project.sample())
    assert status == 200, body
    return str(body["version"])


def test_alias_flow_rollback_and_tampered_version(project: Project,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # wide tables in captured output
    monkeypatch.setenv("MLOPS_IDENTITY", "dr-house")  # the approver the rule names, locally
    drop_declared_training(project)
    project.edit("    tags: {dataset", TRAINING + "    tags: {dataset")
    project.edit("model: diagnosis  ", "model: diagnosis@production  ")

    # Serving an unset alias is refused with a hint, before anything is deployed.
    refused = project.mlops("deploy", check=False)
    assert refused.returncode == 2
    assert "alias 'production' of model 'diagnosis' is not set" in refused.stderr
    assert "mlops models promote" in refused.stderr

    assert "registered diagnosis@1.0.0" in project.mlops("models", "register").stdout
    assert "nothing to do" in project.mlops("models", "register").stdout
    denied = project.mlops("models", "promote", "diagnosis@1.0.0", "--alias", "production",
                           check=False)
    assert denied.returncode == 2 and "needs 1 approval(s) from dr-house" in denied.stderr
    project.mlops("models", "approve", "diagnosis@1.0.0", "--by", "dr-house", "--note", "ok")
    project.mlops("models", "promote", "diagnosis@1.0.0", "--alias", "production")
    project.mlops("deploy")
    assert served_version(project) == "1.0.0"
    before_v2 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    time.sleep(1.1)

    # 1.1.0: new bytes, registered, approved, promoted with --deploy: the endpoint follows.
    project.use_model(7)
    project.edit("version: 1.0.0 ", "version: 1.1.0 ")
    project.mlops("models", "register")
    project.mlops("models", "approve", "diagnosis@1.1.0", "--by", "dr-house")
    project.mlops("models", "promote", "diagnosis@1.1.0", "--alias", "production", "--deploy")
    assert served_version(project) == "1.1.0"

    # Rollback moves the alias; the next deploy moves the endpoint.
    rolled = project.mlops("models", "rollback", "diagnosis", "--alias", "production")
    assert "1.1.0 → 1.0.0" in rolled.stdout
    assert served_version(project) == "1.1.0"
    project.mlops("deploy")
    assert served_version(project) == "1.0.0"

    at = project.mlops("models", "history", "diagnosis", "--at", before_v2)
    assert "diagnosis@production was 1.0.0" in at.stdout
    lineage = project.mlops("models", "lineage", "diagnosis@1.1.0").stdout
    assert re.search(r"diagnosis@1\.1\.0.*\n.*diagnosis@1\.0\.0", lineage)

    # Someone overwrites 1.1.0's artifact in the bucket: promoting and deploying it are
    # refused, and the endpoint keeps serving 1.0.0.
    session = session_for(project)
    s3 = session.target.conn.client("s3")
    s3.put_object(Bucket=session.bucket, Key="models/diagnosis/1.1.0/model.onnx", Body=b"evil")
    tampered = project.mlops("models", "show", "diagnosis@1.1.0", "--verify", check=False)
    assert tampered.returncode == 7 and "INTEGRITY FAILURE" in tampered.stderr
    project.mlops("models", "rollback", "diagnosis", "--to", "1.1.0", check=False)
    project.edit("model: diagnosis@production  ", "model: diagnosis@1.1.0  ")
    project.edit("version: 1.1.0 ", "version: 1.2.0 ")  # declared 1.2.0, endpoint pins 1.1.0
    deploy = project.mlops("deploy", check=False)
    assert deploy.returncode == 7 and "INTEGRITY FAILURE" in deploy.stderr
    assert served_version(project) == "1.0.0"

    # The audit trail has every registry change, before → after, queryable by model.
    audit = project.mlops("audit", "--model", "diagnosis", "--limit", "200").stdout
    for action in ("models.register", "models.approve", "models.promote", "models.rollback"):
        assert action in audit
    card = project.mlops("models", "card", "diagnosis@1.0.0").stdout
    assert "Decision support for clinicians" in card and "dr-house" in card
    assert (project.root / ".mlops/cards/diagnosis/1.0.0/card.html").read_text().count("<table>")


def test_reproduce_and_diff(project: Project) -> None:
    drop_declared_training(project)
    project.edit("    tags: {dataset", TRAINING + "    tags: {dataset")
    shutil.copy(REPO / EXAMPLE / "train.py", project.root / EXAMPLE / "train.py")
    project.mlops("models", "register")
    shown = project.mlops("models", "show", "diagnosis", "--json").stdout
    assert '"seed": 42' in shown and '"rows": 426' in shown and '"commit"' in shown
    result = project.mlops("models", "reproduce", "diagnosis@1.0.0")
    assert "reproduced diagnosis@1.0.0: identical artifact" in result.stdout
    project.use_model(7)
    project.edit("version: 1.0.0 ", "version: 1.1.0 ")
    project.edit("params: {seed: 42}", "params: {seed: 7}")
    project.edit("accuracy: 0.965", "accuracy: 0.958")
    project.mlops("models", "register")
    diff = project.mlops("models", "diff", "diagnosis@1.0.0", "1.1.0").stdout
    assert "metrics.accuracy" in diff and "-0.007" in diff and "params.seed" in diff


def test_damaged_deployed_artifact_is_refused_named_and_restored(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The serving version's model.onnx is overwritten in the bucket: deploy, plan, doctor and
    lock --check all fail with exit 7 naming the version and how to recover; `mlops models
    restore` puts the recorded bytes back, after which all of them pass again."""
    monkeypatch.setenv("COLUMNS", "250")  # doctor's table on one line per check
    project.mlops("deploy")
    session = session_for(project)
    s3 = session.target.conn.client("s3")
    key = "models/diagnosis/1.0.0/model.onnx"
    s3.put_object(Bucket=session.bucket, Key=key, Body=b"not the model")

    for args in (("deploy",), ("plan",), ("lock", "--check")):
        proc = project.mlops(*args, check=False)
        assert proc.returncode == 7, (args, proc.stdout, proc.stderr)
        assert "diagnosis@1.0.0 is damaged" in proc.stderr, proc.stderr
        assert key in proc.stderr and "mlops models restore diagnosis@1.0.0" in proc.stderr
        assert "Traceback" not in proc.stderr and "no changes" not in proc.stdout
    doctor = project.mlops("doctor", check=False)
    assert doctor.returncode == 7, doctor.stdout + doctor.stderr
    assert "artifact diagnosis@1.0.0" in doctor.stdout and "damaged" in doctor.stdout

    restored = project.mlops("models", "restore", "diagnosis@1.0.0")
    assert "restored diagnosis@1.0.0 from" in restored.stdout
    assert "intact" in project.mlops("models", "restore", "diagnosis@1.0.0").stdout
    assert "no changes" in project.mlops("deploy").stdout
    project.mlops("lock", "--check")
    doctor = project.mlops("doctor", check=False)
    assert "artifact diagnosis@1.0.0" in doctor.stdout and "damaged" not in doctor.stdout
    assert doctor.returncode in (0, 1), doctor.stdout  # other checks are not this test's
    assert served_version(project) == "1.0.0"
    actions = [r.get("action") for r in session_for(project).audit.read_local()]
    assert "models.restore" in actions
