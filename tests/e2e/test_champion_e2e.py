"""Champion/challenger gates through the CLI on the embedded local AWS: the first version has
no champion (its relative gate passes and the audit says so); the next is compared with the
version the endpoint serves, on the candidate's hold-out, and stopped with both figures."""

from __future__ import annotations

from typing import Any

import pytest

from framework.gates import FIRST_VERSION
from framework.registry.audit_query import read_registry
from tests.e2e.conftest import Project, http
from tests.e2e.test_deploy import session_for, url_of


def gate_records(project: Project) -> list[dict[str, Any]]:
    """The gates' audit records in the registry (not the local mirror), oldest first."""
    session = session_for(project)
    records = read_registry(session.target.conn.client("s3"), session.bucket, None)
    return [r for r in records if r.get("action") == "gates"]


def test_a_candidate_is_gated_against_the_serving_version(project: Project) -> None:
    project.edit('gates: {roc_auc: ">=0.97"', 'gates: {roc_auc: ">= champion - 0.01"')
    first = project.mlops("deploy")
    row = next(line for line in first.stdout.splitlines() if "roc_auc" in line)
    assert FIRST_VERSION in row and "pass" in row, first.stdout
    [record] = gate_records(project)  # written once the first apply created the registry
    assert record["outcome"] == "succeeded" and record["resource"] == "model.diagnosis@1.0.0"
    assert record["after"]["champion"] is None
    assert record["after"]["no_champion"] == FIRST_VERSION
    auc = {g["gate"]: g for g in record["after"]["gates"]}["roc_auc"]
    assert auc["passed"] and auc["measured"] > 0.9 and auc["champion"] is None

    url = url_of(project)
    project.use_model(7)  # other bytes, and the hold-out of that training run
    project.edit("version: 1.0.0", "version: 1.1.0")
    project.edit('roc_auc: ">= champion - 0.01"', 'roc_auc: ">= champion + 0.5"')
    second = project.mlops("deploy", check=False)
    assert second.returncode == 5, second.stdout + second.stderr
    record = gate_records(project)[-1]
    assert record["outcome"] == "failed" and record["resource"] == "model.diagnosis@1.1.0"
    assert record["after"]["champion"]["version"] == "1.0.0"
    assert record["after"]["champion"]["serves"] == "endpoint predict"
    auc = {g["gate"]: g for g in record["after"]["gates"]}["roc_auc"]
    assert not auc["passed"] and auc["champion_version"] == "1.0.0"
    assert 0.9 < auc["champion"] <= 1 and 0.9 < auc["measured"] <= 1
    assert auc["bound"] == pytest.approx(auc["champion"] + 0.5, abs=2e-6)
    # The reason names the candidate's figure, the bound and the champion's figure.
    reason = (f"candidate {auc['measured']:.4g} misses >= champion + 0.5 = "
              f"{auc['bound']:.4g} (champion 1.0.0: {auc['champion']:.4g})")
    assert reason in second.stderr, second.stderr
    row = next(line for line in second.stdout.splitlines() if "roc_auc" in line)
    assert f"{auc['champion']:.4g} (1.0.0)" in row and "FAIL" in row, second.stdout
    # Nothing shipped: the endpoint answers with the champion.
    status, _, body = http("POST", url, project.sample())
    assert status == 200 and body["version"] == "1.0.0"
