"""The CloudFormation export: deterministic, complete and accepted by cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framework import resources
from framework.compile import ArtifactInfo, compile_config
from framework.config.models import Config
from framework.errors import ConfigError
from framework.resources.base import FoldedInto, Implicit, InRegistry, Stack
from framework.synth import ACCOUNT, REGION, logical_id, synthesize, to_json
from tests.compile.test_compile import SPEC, context
from tests.conftest import check_golden

HOLDOUT = ArtifactInfo(sha256="h" * 64, size=99, source="data/holdout.csv", metadata="")


def template() -> dict:
    graph = compile_config(Config.model_validate(SPEC),
                           context(account_id=ACCOUNT, region=REGION))
    return synthesize(graph, description="mlops project fraud, stage dev")


def canary_spec(every: str = "2m") -> dict:
    spec = json.loads(json.dumps(SPEC))
    spec["models"]["fraud-clf"]["holdout"] = {"path": "data/holdout.csv", "label": "fraud"}
    spec["models"]["fraud-clf"]["gates"] = {"roc_auc": ">=0.9"}
    spec["endpoints"]["score"]["rollout"] = {
        "strategy": "canary", "steps": [10, 100], "every": every,
        "watch": {"error_rate": 0.02, "invalid_rate": 0.2, "p99_latency_ms": 200}}
    spec["endpoints"]["score-iam"]["rollout"] = {"strategy": "blue_green"}
    return spec


def canary_template(every: str = "2m") -> dict:
    """The test project with a canary checked before traffic on one endpoint and a blue/green
    switch on the other: deployed by CodeDeploy as SAM's DeploymentPreference deploys."""
    graph = compile_config(Config.model_validate(canary_spec(every)),
                           context(account_id=ACCOUNT, region=REGION,
                                   holdouts={"fraud-clf": HOLDOUT}))
    return synthesize(graph, description="mlops project fraud, stage dev")


def test_every_kind_has_a_cloudformation_form() -> None:
    missing = [k.name for k in resources.TABLE
               if not isinstance(k.cloudformation, Stack | InRegistry | FoldedInto | Implicit)]
    assert not missing, f"give these kinds a CloudFormation form in their module: {missing}"
    for k in resources.TABLE:  # a folded kind folds into a stack resource
        if isinstance(k.cloudformation, FoldedInto):
            assert isinstance(resources.kind(k.cloudformation.parent).cloudformation, Stack)


def test_template_matches_golden() -> None:
    check_golden("synth_fraud.json", to_json(template()))


def test_cfn_lint_accepts_the_template(tmp_path: Path) -> None:
    cfnlint = pytest.importorskip("cfnlint.api")
    path = tmp_path / "template.json"
    path.write_text(to_json(template()))
    matches = cfnlint.lint_file(path, config=cfnlint.ManualArgs(regions=["us-east-1"]))
    problems = [f"{m.rule.id} {m.message} ({m.path})" for m in matches
                if m.rule.id.startswith(("E", "W"))]
    assert problems == []


def test_sam_template_passes_cfn_lint(tmp_path: Path) -> None:
    from framework.synth import to_sam

    cfnlint = pytest.importorskip("cfnlint.api")
    sam = to_sam(template())
    kinds = {r["Type"] for r in sam["Resources"].values()}
    assert "AWS::Serverless::Function" in kinds and "AWS::Lambda::Function" not in kinds
    path = tmp_path / "sam.json"
    path.write_text(to_json(sam))
    matches = cfnlint.lint_file(path, config=cfnlint.ManualArgs(regions=["us-east-1"]))
    problems = [f"{m.rule.id} {m.message} ({m.path})" for m in matches
                if m.rule.id.startswith(("E", "W"))]
    assert problems == []


def test_refs_become_intrinsics() -> None:
    res = template()["Resources"]
    route = res[logical_id("route.score")]["Properties"]
    assert route["ApiId"] == {"Ref": "Api"}
    assert route["Target"] == {"Fn::Join": ["", ["integrations/",
                                                  {"Ref": "IntegrationScore"}, ""]]}
    alias = res[logical_id("alias.score")]["Properties"]
    assert alias["FunctionVersion"] == {"Fn::GetAtt": ["VersionScore", "Version"]}
    role = res[logical_id("function.score")]["Properties"]["Role"]
    assert role == {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:role/fraud-dev-score-fn"}


def test_registry_content_is_listed_not_created() -> None:
    t = template()
    kinds = {r["Type"] for r in t["Resources"].values()}
    assert "AWS::S3::Bucket" not in kinds
    listed = {e["Resource"]: e for e in t["Metadata"]["Mlops::Registry"]}
    assert listed["model.fraud-clf@1.2.0"]["Sha256"] == "a" * 64
    assert listed["code"]["Key"].startswith("code/")
    json.dumps(t)  # JSON-serialisable throughout


def test_layers_become_layer_versions_and_every_function_has_one(tmp_path: Path) -> None:
    cfnlint = pytest.importorskip("cfnlint.api")
    from framework.synth import to_sam

    graph = compile_config(Config.model_validate(SPEC), context(
        account_id=ACCOUNT, region=REGION))
    t = synthesize(graph, description="with layers")
    layer_id = logical_id("layer.serve-py313-x86_64")
    layer = t["Resources"][layer_id]
    assert layer["Type"] == "AWS::Lambda::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    fn = t["Resources"][logical_id("function.score")]["Properties"]
    assert fn["Layers"] == [{"Ref": layer_id}]
    assert fn["Runtime"] == "python3.13" and fn["Architectures"] == ["x86_64"]
    for template in (t, to_sam(t)):
        functions = {lid: r for lid, r in template["Resources"].items()
                     if r["Type"] in ("AWS::Lambda::Function", "AWS::Serverless::Function")}
        assert len(functions) == 4  # with the monitor's failure notifier
        assert all(r["Properties"].get("Layers") for r in functions.values()), functions
    path = tmp_path / "t.json"
    path.write_text(to_json(t))
    matches = cfnlint.lint_file(path, config=cfnlint.ManualArgs(regions=["us-east-1"]))
    assert [m for m in matches if m.rule.id.startswith(("E", "W"))] == []


def test_capture_stream_passes_cfn_lint(tmp_path: Path) -> None:
    cfnlint = pytest.importorskip("cfnlint.api")
    spec = json.loads(json.dumps(SPEC))
    spec["endpoints"]["score"]["capture"] = {"sample_rate": 1.0}
    graph = compile_config(Config.model_validate(spec), context(
        account_id=ACCOUNT, region=REGION))
    t = synthesize(graph, description="with capture")
    kinds = {r["Type"] for r in t["Resources"].values()}
    assert {"AWS::KinesisFirehose::DeliveryStream", "AWS::Logs::SubscriptionFilter"} <= kinds
    streams = [r for r in t["Resources"].values()
               if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"]
    assert len(streams) == 2  # captured rows, and feedback labels
    for stream in streams:
        processors = stream["Properties"]["ExtendedS3DestinationConfiguration"][
            "ProcessingConfiguration"]["Processors"]
        assert [p["Type"] for p in processors] == ["Decompression", "CloudWatchLogProcessing"]
    path = tmp_path / "t.json"
    path.write_text(to_json(t))
    matches = cfnlint.lint_file(path, config=cfnlint.ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches
            if m.rule.id.startswith(("E", "W"))] == []


def test_codedeploy_resources_as_sam_deploys_a_function() -> None:
    found = canary_template()["Resources"]
    kinds: dict[str, list[str]] = {}
    for lid, body in found.items():
        kinds.setdefault(body["Type"], []).append(lid)
    assert len(kinds["AWS::CodeDeploy::Application"]) == 1
    assert len(kinds["AWS::CodeDeploy::DeploymentGroup"]) == 2
    assert len(kinds["AWS::CodeDeploy::DeploymentConfig"]) == 1  # blue/green: AllAtOnce
    # the canary's 3 signals and b/g's 1, each with Lambda's own function errors
    assert len(kinds["AWS::CloudWatch::Alarm"]) == 4 + 2
    config = found[kinds["AWS::CodeDeploy::DeploymentConfig"][0]]["Properties"]
    assert config["TrafficRoutingConfig"] == {"Type": "TimeBasedCanary", "TimeBasedCanary": {
        "CanaryPercentage": 10, "CanaryInterval": 2}}
    group = found[logical_id("deploy-group.score")]["Properties"]
    assert group["AutoRollbackConfiguration"] == {
        "Enabled": True, "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]}
    assert len(group["AlarmConfiguration"]["Alarms"]) == 4
    assert {"Name": "fraud-dev-score-1.2.0-function-errors"} in group["AlarmConfiguration"][
        "Alarms"]
    assert group["DeploymentStyle"] == {"DeploymentType": "BLUE_GREEN",
                                        "DeploymentOption": "WITH_TRAFFIC_CONTROL"}
    alias = found["AliasScore"]
    assert alias["UpdatePolicy"] == {"CodeDeployLambdaAliasUpdate": {
        "ApplicationName": "fraud-dev", "DeploymentGroupName": "fraud-dev-score",
        "BeforeAllowTrafficHook": "fraud-dev-hook-score"}}
    assert {logical_id("deploy-group.score"), logical_id("function.hook-score")} <= set(
        alias["DependsOn"])
    assert "UpdatePolicy" not in found[logical_id("alias.mon-fraud-drift")]  # not deployed
    assert not [lid for lid in found if lid.startswith("Deployment")]  # no deployment itself


def test_codedeploy_template_matches_golden_and_passes_cfn_lint(tmp_path: Path) -> None:
    from framework.synth import to_sam

    text = to_json(canary_template())
    check_golden("synth_canary.json", text)
    cfnlint = pytest.importorskip("cfnlint.api")
    for name, body in (("template.json", text), ("sam.json", to_json(to_sam(json.loads(text))))):
        path = tmp_path / name
        path.write_text(body)
        matches = cfnlint.lint_file(path, config=cfnlint.ManualArgs(regions=["us-east-1"]))
        problems = [f"{m.rule.id} {m.message} ({m.path})" for m in matches
                    if m.rule.id.startswith(("E", "W"))]
        assert problems == [], name


def test_bake_times_codedeploy_cannot_count_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        canary_template(every="15s")
    (problem,) = info.value.problems
    assert problem.where == "endpoints.score.rollout.every"
    assert "whole minutes" in problem.what and "every: 1m" in problem.hint
