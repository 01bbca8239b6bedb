"""Champion/challenger gates with two real ONNX models: both run on the candidate's hold-out
through the same code, and every relative gate reports both figures and the bound."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from framework import local
from framework.apply.audit import AuditLog
from framework.artifacts import build_metadata
from framework.champion import fetch, serving_versions
from framework.config.loader import load_config
from framework.config.models import Model
from framework.gates import (
    FIRST_VERSION,
    Champion,
    GateFailedError,
    GateResult,
    audit_fields,
    evaluate,
)
from framework.plan.state import Entry, State
from framework.registry.errors import RegistryIntegrityError
from framework.registry.store import Registry
from tests.ports import free_port_pair

FEATURES = ("a", "b", "c")
MLOPS_YAML = """\
project: tiny
models:
  tiny:
    version: {version}
    artifact: model.onnx
    task: classification
    holdout: {{path: holdout.csv, label: label, positive: "yes"}}
    gates: {gates}
    features:
      - {{name: a, type: float, min: 0}}
      - {{name: b, type: float}}
      - {{name: c, type: float}}
"""
ENDPOINTS = """\
endpoints:
  a: {model: tiny, route: POST /a}
  b: {model: tiny@production, route: POST /b}
"""


@dataclass(frozen=True)
class Trained:
    onnx: bytes
    auc: float  # scikit-learn's figures on the hold-out, computed independently
    accuracy: float


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(0, 10, n), rng.normal(size=n), rng.normal(size=n)])
    noisy = x[:, 0] / 2 + 2 * x[:, 1] + rng.normal(scale=1.5, size=n)
    return x, np.where(noisy > 2.5, "yes", "no")


def _train(columns: list[int]) -> Trained:
    """A logistic regression that sees only ``columns`` (the others are zeroed), as ONNX."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    x, y = _data(400, seed=1)
    mask = np.zeros(3)
    mask[columns] = 1.0
    clf = LogisticRegression().fit(x * mask, y)
    # The mask is part of the model: scale the coefficients, so the ONNX takes all three.
    clf.coef_ = clf.coef_ * mask
    onx = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 3]))],
                          options={id(clf): {"zipmap": False}},
                          target_opset={"": 17, "ai.onnx.ml": 3})
    hx, hy = holdout()
    positive = list(clf.classes_).index("yes")
    return Trained(onnx=onx.SerializeToString(),
                   auc=float(roc_auc_score(hy == "yes", clf.predict_proba(hx)[:, positive])),
                   accuracy=float(accuracy_score(hy, clf.predict(hx))))


def holdout() -> tuple[np.ndarray, np.ndarray]:
    return _data(200, seed=2)


@pytest.fixture(scope="module")
def strong() -> Trained:
    return _train([0, 1])


@pytest.fixture(scope="module")
def weak() -> Trained:
    return _train([2])  # noise only: about a coin toss


def project(root: Path, candidate: Trained, gates: str, version: str = "1.1.0",
            endpoints: str = "") -> tuple[Model, dict[str, Any]]:
    """A project whose declared version is ``candidate``; its model and metadata.json."""
    (root / "model.onnx").write_bytes(candidate.onnx)
    x, y = holdout()
    with (root / "holdout.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([*FEATURES, "label"])
        out.writerows([*map(float, row), label] for row, label in zip(x, y, strict=True))
    (root / "mlops.yaml").write_text(MLOPS_YAML.format(version=version, gates=gates)
                                     + endpoints)
    model = load_config(root / "mlops.yaml").config.models["tiny"]
    return model, build_metadata("tiny", model, root / "model.onnx")


def champion_of(trained: Trained, tmp_path: Path, **changes: Any) -> Champion:
    """``trained`` as version 1.0.0, with the metadata.json mlops would have registered."""
    folder = tmp_path / f"champion-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    model, meta = project(folder, trained, "{}", version="1.0.0")
    return Champion("1.0.0", {**meta, **changes}, trained.onnx, "endpoint predict")


def by_gate(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.gate: r for r in results}


def test_the_models_differ(strong: Trained, weak: Trained) -> None:
    assert strong.auc > 0.9 and weak.auc < 0.7  # the gates below depend on it


def test_a_better_candidate_beats_the_champion_on_the_same_holdout(
        tmp_path: Path, strong: Trained, weak: Trained) -> None:
    model, meta = project(tmp_path, strong, '{roc_auc: ">= champion + 0.2", '
                                            'accuracy: ">= champion - 0.01", '
                                            'size_mb: "<= champion * 1.5", recall: ">=0.5"}')
    champion = champion_of(weak, tmp_path)
    results = by_gate(evaluate("tiny", model, tmp_path, meta, None, champion=champion))
    auc = results["roc_auc"]
    assert auc.passed and auc.relative and auc.champion_version == "1.0.0"
    # Both figures are those scikit-learn gives on the same hold-out rows.
    assert auc.measured == pytest.approx(strong.auc, abs=2e-3)
    assert auc.champion == pytest.approx(weak.auc, abs=2e-3)
    assert auc.bound == pytest.approx(auc.champion + 0.2)
    assert f"candidate {auc.measured:.4g}" in auc.detail
    assert f"(champion 1.0.0: {auc.champion:.4g})" in auc.detail
    accuracy = results["accuracy"]
    assert accuracy.passed and accuracy.measured == pytest.approx(strong.accuracy, abs=1e-9)
    assert accuracy.champion == pytest.approx(weak.accuracy, abs=1e-9)
    size = results["size_mb"]
    assert size.champion == pytest.approx(len(weak.onnx) / 1e6, abs=1e-6)
    assert size.bound == pytest.approx(len(weak.onnx) / 1e6 * 1.5, abs=1e-6)
    recall = results["recall"]  # absolute: no champion in it
    assert recall.passed and not recall.relative and recall.bound == 0.5
    assert recall.champion is None and "champion" not in recall.to_dict()
    record = audit_fields("tiny", "1.1.0", list(results.values()), champion)
    assert record["outcome"] == "succeeded" and record["resource"] == "model.tiny@1.1.0"
    assert record["after"]["champion"]["version"] == "1.0.0"
    gates = {g["gate"]: g for g in record["after"]["gates"]}
    assert gates["roc_auc"]["measured"] == auc.measured
    assert gates["roc_auc"]["champion"] == auc.champion
    assert gates["roc_auc"]["bound"] == auc.bound
    json.dumps(record)  # an audit record is JSON


def test_a_worse_candidate_fails_against_the_champion(
        tmp_path: Path, strong: Trained, weak: Trained) -> None:
    model, meta = project(tmp_path, weak, '{roc_auc: ">= champion - 0.01", '
                                          'accuracy: ">= 0.3"}')
    champion = champion_of(strong, tmp_path)
    results = evaluate("tiny", model, tmp_path, meta, None, champion=champion)
    auc = by_gate(results)["roc_auc"]
    assert not auc.passed
    assert auc.measured == pytest.approx(weak.auc, abs=2e-3)
    assert auc.champion == pytest.approx(strong.auc, abs=2e-3)
    assert auc.bound == pytest.approx(auc.champion - 0.01)
    assert by_gate(results)["accuracy"].passed
    error = GateFailedError("tiny", "1.1.0", results)
    assert error.exit_code == 5
    # The reason names both figures and the bound they resolve to.
    assert f"candidate {auc.measured:.4g} misses >= champion - 0.01 = {auc.bound:.4g}" in \
        error.what
    assert f"champion 1.0.0: {auc.champion:.4g}" in error.what
    record = audit_fields("tiny", "1.1.0", results, champion)
    assert record["outcome"] == "failed" and "roc_auc" in record["reason"]


def test_without_a_champion_relative_gates_pass_and_say_why(
        tmp_path: Path, weak: Trained) -> None:
    model, meta = project(tmp_path, weak, '{roc_auc: ">= champion + 0.5", accuracy: ">=0.99"}')
    results = by_gate(evaluate("tiny", model, tmp_path, meta, None))
    auc = results["roc_auc"]
    assert auc.passed and auc.detail.startswith(FIRST_VERSION)
    assert auc.measured == pytest.approx(weak.auc, abs=2e-3)
    assert auc.champion is auc.champion_version is auc.bound is None
    assert not results["accuracy"].passed  # absolute gates are not excused
    record = audit_fields("tiny", "1.1.0", list(results.values()))
    assert record["after"]["champion"] is None
    assert record["after"]["no_champion"] == FIRST_VERSION
    assert {g["gate"]: g for g in record["after"]["gates"]}["roc_auc"]["no_champion"] == \
        FIRST_VERSION
    offline = by_gate(evaluate("tiny", model, tmp_path, meta, None,
                               no_champion="no champion: not looked up (offline)"))
    assert offline["roc_auc"].passed and "offline" in offline["roc_auc"].detail


def test_a_champion_that_cannot_take_the_holdout_fails_relative_gates(
        tmp_path: Path, strong: Trained, weak: Trained) -> None:
    model, meta = project(tmp_path, strong, '{roc_auc: ">= champion", recall: ">=0.5"}')
    # The champion's contract said a <= 1: the hold-out (a up to 10) breaks it.
    features = [{**f, "max": 1.0} if f["name"] == "a" else f
                for f in champion_of(weak, tmp_path).metadata["features"]]
    champion = champion_of(weak, tmp_path, features=features)
    results = by_gate(evaluate("tiny", model, tmp_path, meta, None, champion=champion))
    assert not results["roc_auc"].passed
    assert "champion 1.0.0 could not be measured" in results["roc_auc"].detail
    assert "does not fit the input contract" in results["roc_auc"].detail
    assert results["recall"].passed  # the candidate itself is measured as always


def test_latency_against_the_champion_on_the_packaged_handler(
        tmp_path: Path, strong: Trained, weak: Trained) -> None:
    """The real measurement: the packaged handler answers for each version in turn."""
    from framework.workflow import Workspace, run_gates

    project(tmp_path, strong, '{p99_latency_ms: "<= champion * 100"}')
    champion = champion_of(weak, tmp_path)
    ws = Workspace.open(tmp_path / "mlops.yaml")
    latency = by_gate(run_gates(ws, "tiny", None, champion=(champion, "")))["p99_latency_ms"]
    assert latency.champion_version == "1.0.0"
    assert latency.champion is not None and latency.champion > 0
    assert latency.measured is not None and isinstance(latency.measured, float)
    assert latency.bound == pytest.approx(latency.champion * 100)
    assert latency.passed == (latency.measured <= latency.bound)


# -- the champion's bytes come from the registry, checked ------------------------------


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("champion-aws")
    running = local.start(home, free_port_pair())
    yield local.connection(running, "us-east-1")
    local.stop(home)


def registry_with(conn: Any, tmp_path: Path, versions: dict[str, Trained]) -> Registry:
    s3 = conn.client("s3")
    bucket = f"reg-{uuid.uuid4().hex[:12]}"
    reg = Registry(s3=s3, bucket=bucket, actor="tester",
                   audit=AuditLog(s3=s3, bucket=bucket, local_file=tmp_path / "audit.jsonl"))
    reg.ensure_bucket("us-east-1")
    for version, trained in versions.items():
        meta = {**champion_of(trained, tmp_path).metadata, "version": version}
        reg.register("tiny", version, trained.onnx, meta,
                     {"created_at": "2026-01-01T00:00:00.000000Z", "author": "tester",
                      "code": {"commit": "abc", "dirty": False}})
    return reg


def test_the_champion_is_fetched_verified(conn: Any, tmp_path: Path, weak: Trained) -> None:
    reg = registry_with(conn, tmp_path, {"1.0.0": weak})
    s3, bucket = conn.client("s3"), reg.bucket
    champion = fetch(reg, "tiny", "1.0.0", "endpoint predict")
    assert champion.artifact == weak.onnx and champion.metadata["sha256"] == \
        hashlib.sha256(weak.onnx).hexdigest()
    s3.put_object(Bucket=bucket, Key="models/tiny/1.0.0/model.onnx", Body=weak.onnx + b"x")
    with pytest.raises(RegistryIntegrityError) as caught:
        fetch(reg, "tiny", "1.0.0", "endpoint predict")
    assert caught.value.exit_code == 7 and "tiny@1.0.0 is damaged" in caught.value.what


def _state(serving: str, latest: str, function: str) -> State:
    env = {"MLOPS_MODEL_NAME": "tiny", "MLOPS_MODEL_VERSION": "1.1.0"}  # the latest's
    return State("tiny", "dev", resources={
        "function.a": Entry("lambda_function", {"function_name": function, "environment": env},
                            {}),
        "version.a": Entry("lambda_version", {"function_name": function}, {"version": latest}),
        "alias.a": Entry("lambda_alias", {"function_name": function}, {"version": serving}),
        "model.tiny@1.1.0": Entry("model_version", {"name": "tiny", "version": "1.1.0"}, {}),
    })


def test_the_champion_is_what_the_endpoints_serve(
        conn: Any, tmp_path: Path, strong: Trained, weak: Trained) -> None:
    reg = registry_with(conn, tmp_path, {"1.0.0": weak, "1.1.0": strong})
    reg.set_alias(reg.alias("tiny", "production"), "1.0.0", action="promote")
    project(tmp_path, strong, '{roc_auc: ">= champion"}', version="1.2.0", endpoints=ENDPOINTS)
    config = load_config(tmp_path / "mlops.yaml").config
    lam = conn.client("lambda")
    function = f"tiny-dev-a-{uuid.uuid4().hex[:6]}"
    # Endpoint a serves the model as declared (the state says 1.1.0); endpoint b the version
    # the registry's production alias points at.
    assert serving_versions(config, _state("2", "2", function), "tiny", reg, lam) == [
        ("1.1.0", "endpoint a"), ("1.0.0", "alias production (endpoint b)")]
    # A rollback left the alias on Lambda version 1, which serves 1.0.0: Lambda says so.
    role = conn.client("iam").create_role(
        RoleName=function, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    lam.create_function(FunctionName=function, Runtime="python3.13", Role=role,
                        Handler="handler.handler", Code={"ZipFile": code.getvalue()},
                        Environment={"Variables": {"MLOPS_MODEL_NAME": "tiny",
                                                   "MLOPS_MODEL_VERSION": "1.0.0"}},
                        Publish=True)
    assert serving_versions(config, _state("1", "2", function), "tiny", reg, lam)[0] == \
        ("1.0.0", "endpoint a")
    # No endpoint deployed yet, no alias set: the version the stage registered.
    reg.set_alias(reg.alias("tiny", "production"), "1.1.0", action="promote")
    bare = State("tiny", "dev", resources={
        "model.tiny@1.1.0": Entry("model_version", {"name": "tiny", "version": "1.1.0"}, {})})
    assert serving_versions(config, bare, "tiny", reg, lam) == [
        ("1.1.0", "alias production (endpoint b)")]
    (tmp_path / "mlops.yaml").write_text(
        (tmp_path / "mlops.yaml").read_text().replace(ENDPOINTS, ""))
    alone = load_config(tmp_path / "mlops.yaml").config
    assert serving_versions(alone, bare, "tiny", reg, lam) == [("1.1.0", "deploy state")]
    assert serving_versions(alone, State("tiny", "dev"), "tiny", reg, lam) == []
