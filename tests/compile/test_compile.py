"""Compile is pure and deterministic; its output is pinned by golden files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework.compile import ArtifactInfo, CodeBundle, CompileContext, compile_config
from framework.compile.graph import KINDS, Resource, ResourceGraph, ref, resolve
from framework.config.models import Config
from framework.config.runtimes import RUNTIMES
from tests.conftest import check_golden
from tests.fakelayers import fake_layer

SPEC: dict[str, Any] = {
    "project": "fraud",
    "models": {
        "fraud-clf": {
            "version": "1.2.0",
            "artifact": "artifacts/fraud.onnx",
            "features": [
                {"name": "amount", "type": "float", "min": 0},
                {"name": "hour", "type": "int", "min": 0, "max": 23},
            ],
            "metrics": {"auc": 0.97},
        }
    },
    "endpoints": {
        "score": {"model": "fraud-clf", "route": "POST /fraud/score", "memory": 512},
        "score-iam": {"model": "fraud-clf@1.2.0", "route": "POST /fraud/score-iam",
                      "auth": "iam"},
    },
    "monitors": {
        "fraud-drift": {"endpoint": "score", "schedule": "rate(1 day)",
                        "notify": {"email": ["risk@example.com"], "when": "drift"}},
    },
}


def context(**over: Any) -> CompileContext:
    base: dict[str, Any] = dict(
        project="fraud", stage="dev", region="us-east-1", account_id="123456789012",
        artifacts={"fraud-clf": ArtifactInfo(sha256="a" * 64, size=1234,
                                             source="artifacts/fraud.onnx",
                                             metadata='{"name":"fraud-clf"}')},
        code=CodeBundle(sha256="c" * 64, size=4321, source=".mlops/build/code.zip"),
        layers={(need, rt, arch): fake_layer((need, rt, arch)) for need in ("serve", "monitor")
                for rt in RUNTIMES for arch in ("x86_64", "arm64")},
    )
    base.update(over)
    return CompileContext(**base)


def test_compile_matches_golden() -> None:
    graph = compile_config(Config.model_validate(SPEC), context())
    check_golden("compile_fraud.json", graph.to_json())


def test_compile_is_deterministic() -> None:
    a = compile_config(Config.model_validate(SPEC), context()).to_json()
    b = compile_config(Config.model_validate(json.loads(json.dumps(SPEC))), context()).to_json()
    assert a == b


def test_every_resource_kind_is_known_and_ordered() -> None:
    graph = compile_config(Config.model_validate(SPEC), context())
    kinds = {r.kind for r in graph.resources.values()}
    assert kinds <= set(KINDS)
    order = graph.order()
    position = {rid: i for i, rid in enumerate(order)}
    for rid, res in graph.resources.items():
        for dep in res.all_dependencies():
            assert position[dep] < position[rid], f"{dep} must come before {rid}"


def test_memory_change_touches_only_the_function_and_its_version() -> None:
    base = compile_config(Config.model_validate(SPEC), context())
    spec = json.loads(json.dumps(SPEC))
    spec["endpoints"]["score"]["memory"] = 2048
    changed = compile_config(Config.model_validate(spec), context())
    differing = {rid for rid in base.resources
                 if base.resources[rid].props != changed.resources[rid].props}
    assert differing == {"function.score", "version.score"}


def test_policy_is_least_privilege() -> None:
    graph = compile_config(Config.model_validate(SPEC), context())
    policy = graph.resources["role.score"].props["policy"]
    resources = [r for s in policy["Statement"] for r in s["Resource"]]
    bucket = "fraud-registry-123456789012-us-east-1"
    assert f"arn:aws:s3:::{bucket}/models/fraud-clf/*" in resources
    # captured rows and feedback labels leave through the function's log
    assert not [r for r in resources if "/capture/" in r or "/feedback/" in r]
    assert all(r != "*" and not r.endswith(":::*") for r in resources)


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown resource kind"):
        Resource("ec2_instance", "x", {})


def test_dangling_dependency_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown resource"):
        ResourceGraph.of([Resource("log_group", "a", {"name": ref("b", "arn"),
                                                       "retention_days": 1, "tags": {}})])


def test_refs_resolve_with_format() -> None:
    value = {"target": ref("integration.x", "integration_id", "integrations/{}")}
    assert resolve(value, {"integration.x": {"integration_id": "abc"}}) == {
        "target": "integrations/abc"}


def test_pinned_undeclared_version_is_a_config_error() -> None:
    from framework.errors import ConfigError

    spec = json.loads(json.dumps(SPEC))
    spec["endpoints"]["score"]["model"] = "fraud-clf@9.9.9"
    with pytest.raises(ConfigError, match="9.9.9"):
        compile_config(Config.model_validate(spec), context())


def test_each_function_gets_the_layer_of_its_need_runtime_and_architecture() -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["runtime"] = "python3.12"
    spec["endpoints"]["score-iam"]["runtime"] = "python3.13"
    spec["endpoints"]["score-iam"]["architecture"] = "arm64"
    graph = compile_config(Config.model_validate(spec), context())
    layers = {r.id: r for r in graph.resources.values() if r.kind == "lambda_layer"}
    assert sorted(layers) == ["layer.monitor-py312-x86_64", "layer.serve-py312-x86_64",
                              "layer.serve-py313-arm64"]
    serve = layers["layer.serve-py313-arm64"].props
    assert serve["runtimes"] == ["python3.13"] and serve["architectures"] == ["arm64"]
    assert serve["layer_name"] == "fraud-dev-serve-py313-arm64"
    assert serve["packages"]["onnxruntime"]["version"] == "1.20.1"
    zip_obj = graph.resources["layer-zip.serve-py313-arm64"].props
    assert zip_obj["key"] == f"layers/{serve['sha256']}.zip"
    fns = {r.id: r.props for r in graph.resources.values() if r.kind == "lambda_function"}
    expect = {"function.score": ("serve-py312-x86_64", "python3.12", "x86_64"),
              "function.score-iam": ("serve-py313-arm64", "python3.13", "arm64"),
              "function.mon-fraud-drift": ("monitor-py312-x86_64", "python3.12", "x86_64")}
    for fid, (unit, runtime, arch) in expect.items():
        assert fns[fid]["layers"] == [ref(f"layer.{unit}", "layer_version_arn")]
        assert fns[fid]["runtime"] == runtime and fns[fid]["architectures"] == [arch]
    order = graph.order()
    assert all(order.index(f"layer.{unit}") < order.index(fid)
               for fid, (unit, _, _) in expect.items())


def test_a_missing_layer_is_an_error_not_a_function_without_it() -> None:
    with pytest.raises(ValueError, match="no layer built for (serve|monitor)-py313-x86_64"):
        compile_config(Config.model_validate(SPEC), context(layers={}))


def test_capture_is_log_lines_a_subscription_sends_to_a_firehose_stream() -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["endpoints"]["score"]["capture"] = {"sample_rate": 0.5}
    graph = compile_config(Config.model_validate(spec), context())
    stream = graph.resources["stream.score"]
    assert stream.kind == "firehose_stream" and stream.props["source"] == "cloudwatch_logs"
    assert stream.props["prefix"] == "capture/score/dt=!{timestamp:yyyy-MM-dd}/"
    assert stream.props["compression"] == "GZIP" and stream.props["extension"] == ".jsonl.gz"
    fn = graph.resources["function.score"]
    assert fn.props["environment"]["MLOPS_CAPTURE_SINK"] == "log"
    assert "MLOPS_CAPTURE_STREAM" not in fn.props["environment"]
    # The function sends nothing to Firehose: its log group's subscription does.
    actions = [a for s in graph.resources["role.score"].props["policy"]["Statement"]
               for a in s["Action"]]
    assert not [a for a in actions if a.startswith("firehose:")]
    sub = graph.resources["subscription.score"]
    assert sub.kind == "log_subscription"
    assert sub.props["log_group"] == graph.resources["logs.score"].props["name"]
    assert sub.props["filter_pattern"] == '{ $.msg = "capture" }'
    assert sub.props["destination_arn"].endswith(":deliverystream/" + stream.props["stream_name"])
    assert set(sub.depends_on) == {"logs.score", "stream.score", "role.score-capture-logs"}
    logs_role = graph.resources["role.score-capture-logs"].props
    assert logs_role["trust_policy"]["Statement"][0]["Principal"] == {
        "Service": "logs.amazonaws.com"}
    assert [s["Resource"] for s in logs_role["policy"]["Statement"]] == [
        [sub.props["destination_arn"]]]
    role = graph.resources["role.score-capture"].props
    assert role["trust_policy"]["Statement"][0]["Principal"] == {
        "Service": "firehose.amazonaws.com"}
    # No capture declared: no stream.
    assert "stream.score-iam" not in graph.resources
