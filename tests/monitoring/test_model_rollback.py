"""A monitor's rollback serves the previous *model version*: where it goes (the serving
history, each published version's environment), what it records (the registry's history of
the endpoint, the audit), and that it says so when there is nowhere to go. Lambda and S3 are
moto's (in process: a rollback never invokes a function)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from framework.monitoring import actions, serving
from framework.monitoring.spec import MonitorSpec
from framework.monitoring.store import MemoryStore, S3Store

M = "diagnosis"
VERSIONS = {"1": (M, "1.0.0"), "2": (M, "1.0.0"), "3": (M, "1.0.1"), "4": (M, "1.0.1")}


def rec(seq: int, action: str, lambda_version: str, previous: str | None = None
        ) -> dict[str, Any]:
    return {"seq": seq, "action": action, "lambda_version": lambda_version,
            "previous_lambda_version": previous}


# -- where a rollback goes (pure) -------------------------------------------------------------


def test_a_move_between_versions_of_one_model_is_no_rollback() -> None:
    """Versions 3 and 4 both serve 1.0.1 (4 changed memory only): rolling back from 4 goes to
    the newest version that served 1.0.0."""
    history = [rec(1, "deploy", "1"), rec(2, "deploy", "2"), rec(3, "deploy", "3"),
               rec(4, "deploy", "4")]
    target = serving.rollback_target(history, VERSIONS, "4")
    assert (target.version, target.model_version, target.basis) == ("2", "1.0.0",
                                                                    "serving history")
    blind = serving.rollback_target([], VERSIONS, "4")  # no history: published versions
    assert (blind.version, blind.model_version) == ("2", "1.0.0")
    assert blind.basis.startswith("published versions")


def test_a_version_that_never_served_is_passed_over() -> None:
    """Version 2 (1.0.1) was a canary rolled back by its rollout: it never served. From 3
    (1.0.2) the rollback goes to 1 (1.0.0), the version that served before."""
    versions = {"1": (M, "1.0.0"), "2": (M, "1.0.1"), "3": (M, "1.0.2")}
    history = [rec(1, "deploy", "1"), rec(2, "deploy", "3", "1")]
    assert serving.rollback_target(history, versions, "3").version == "1"
    assert serving.rollback_target([], versions, "3").version == "2"  # without a history


def test_rollbacks_undo_moves_rather_than_going_forth_again() -> None:
    versions = {"1": (M, "1.0.0"), "3": (M, "1.0.1"), "5": (M, "1.0.2")}
    history = [rec(1, "deploy", "1"), rec(2, "deploy", "3", "1"), rec(3, "deploy", "5", "3"),
               rec(4, "rollback", "3", "5")]
    again = serving.rollback_target(history, versions, "3")
    assert (again.version, again.model_version) == ("1", "1.0.0")  # not back to 5
    history.append(rec(5, "rollback", "1", "3"))
    nowhere = serving.rollback_target(history, versions, "1")
    assert nowhere.version is None
    assert "no Lambda version that served before serves another version than diagnosis " \
           "1.0.0" in nowhere.reason


def test_a_stale_history_still_knows_the_serving_version_and_other_models_are_skipped(
        ) -> None:
    versions = {"1": (M, "1.0.0"), "2": ("other", "9.0.0"), "3": (M, "1.1.0")}
    # a rollout moved the alias to 3 after the last record: 3 serves, 1 before it
    assert serving.served_stack([rec(1, "deploy", "1")], "3") == ["1", "3"]
    assert serving.rollback_target([rec(1, "deploy", "2"), rec(2, "deploy", "1")], versions,
                                   "3").version == "1"


def test_history_records_are_appended_in_sequence() -> None:
    store = MemoryStore()
    for n, (version, model) in enumerate((("1", "1.0.0"), ("3", "1.0.1")), start=1):
        doc = serving.append(store, model=M, endpoint="predict", function="fn",
                             action="deploy", model_version=model, lambda_version=version,
                             previous_model_version=None, previous_lambda_version=None,
                             changed_by="me")
        assert doc["seq"] == n and doc["alias"] == "endpoint-predict"
    got = serving.records(store, M, "predict")
    assert [(r["seq"], r["lambda_version"], r["version"]) for r in got] == [
        (1, "1", "1.0.0"), (2, "3", "1.0.1")]
    assert sorted(store.objects) == [
        "models/diagnosis/history/endpoint-predict/00000001.json",
        "models/diagnosis/history/endpoint-predict/00000002.json"]


# -- the action, against Lambda and S3 -----------------------------------------------------------

BUCKET = "rollback-registry"
FN = "cancer-dx-dev-predict"


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("h.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        iam = boto3.client("iam")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action":
                                                    "sts:AssumeRole", "Principal": {
                                                        "Service": "lambda.amazonaws.com"}}]}))
        lam = boto3.client("lambda")
        lam.create_function(FunctionName=FN, Runtime="python3.13", Role=role["Role"]["Arn"],
                            Handler="h.handler", Code={"ZipFile": _zip()}, Environment={
                                "Variables": {"MLOPS_MODEL_NAME": M,
                                              "MLOPS_MODEL_VERSION": "1.0.0"}})
        for memory, model in ((256, "1.0.0"), (256, "1.0.0"), (256, "1.0.1"), (512, "1.0.1")):
            lam.update_function_configuration(FunctionName=FN, MemorySize=memory, Environment={
                "Variables": {"MLOPS_MODEL_NAME": M, "MLOPS_MODEL_VERSION": model}})
            lam.publish_version(FunctionName=FN)
        lam.create_alias(FunctionName=FN, Name="live", FunctionVersion="4",
                         RoutingConfig={"AdditionalVersionWeights": {"3": 0.2}})
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield lam, s3


def spec() -> MonitorSpec:
    return MonitorSpec.from_dict({
        "name": "diagnosis-drift", "project": "cancer-dx", "endpoint": "predict", "model": M,
        "version": "1.0.1", "bucket": BUCKET, "endpoint_function": FN,
        "on_drift": ["rollback"]})


def test_the_monitor_rolls_back_to_the_previous_model_version_and_records_it(
        aws: tuple[Any, Any]) -> None:
    lam, s3 = aws
    assert serving.version_models(lam, FN) == VERSIONS
    store = S3Store(s3, BUCKET)
    audited: list[dict[str, Any]] = []
    done = actions.rollback(lam, spec(), lambda **f: audited.append(f), "run-1", store)
    assert done["ok"] and (done["from"], done["to"]) == ("4", "2")
    assert (done["from_model"], done["to_model"]) == ("1.0.1", "1.0.0")
    assert "moved from Lambda version 4 (diagnosis 1.0.1) to 2 (diagnosis 1.0.0)" in \
        done["outcome"]
    alias = lam.get_alias(FunctionName=FN, Name="live")
    assert alias["FunctionVersion"] == "2"
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    [history] = serving.records(store, M, "predict")
    assert (history["action"], history["lambda_version"], history["previous_lambda_version"],
            history["version"], history["previous"], history["changed_by"]) == (
        "rollback", "2", "4", "1.0.0", "1.0.1", "monitor:diagnosis-drift")
    assert history["run_id"] == "run-1" and history["alias"] == "endpoint-predict"
    [record] = audited
    assert record["before"] == {"version": "4", "model_version": "1.0.1"}
    assert record["after"] == {"version": "2", "model_version": "1.0.0"}
    assert record["actor"] == "monitor:diagnosis-drift" and record["endpoint"] == "predict"

    again = actions.rollback(lam, spec(), lambda **f: audited.append(f), "run-2", store)
    assert not again["ok"] and "nothing rolled back" in again["outcome"]
    assert "serves diagnosis 1.0.0 (Lambda version 2)" in again["outcome"]
    assert lam.get_alias(FunctionName=FN, Name="live")["FunctionVersion"] == "2"
    assert len(audited) == 1 and len(serving.records(store, M, "predict")) == 1
