"""The CloudFormation export: deterministic, complete and accepted by cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framework.compile import compile_config
from framework.compile.graph import KINDS
from framework.config.models import Config
from framework.synth import ACCOUNT, REGION, RULES, logical_id, synthesize, to_json
from tests.compile.test_compile import SPEC, context
from tests.conftest import check_golden


def template() -> dict:
    graph = compile_config(Config.model_validate(SPEC),
                           context(account_id=ACCOUNT, region=REGION))
    return synthesize(graph, description="mlops project fraud, stage dev")


def test_every_kind_has_a_cloudformation_form() -> None:
    missing = set(KINDS) - set(RULES)
    assert not missing, f"add a CloudFormation rule to framework/synth.py RULES for {missing}"


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
        assert len(functions) == 3
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
    assert "AWS::KinesisFirehose::DeliveryStream" in kinds
    path = tmp_path / "t.json"
    path.write_text(to_json(t))
    matches = cfnlint.lint_file(path, config=cfnlint.ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches
            if m.rule.id.startswith(("E", "W"))] == []
