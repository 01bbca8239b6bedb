"""Compile is pure and deterministic; its output is pinned by golden files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework.compile import ArtifactInfo, CodeBundle, CompileContext, compile_config
from framework.compile.graph import KINDS, Resource, ResourceGraph, ref, resolve
from framework.config.models import Config
from tests.conftest import check_golden

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
    assert f"arn:aws:s3:::{bucket}/capture/score/*" in resources
    assert all(r != "*" and not r.endswith(":::*") for r in resources)


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown resource kind"):
        Resource("ec2_instance", "x", {})


def test_dangling_dependency_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown resource"):
        ResourceGraph.of([Resource("log_group", "a", {"name": ref("b", "arn")})])


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


def test_runtime_layer_is_published_and_attached_to_every_function() -> None:
    layer = CodeBundle(sha256="d" * 64, size=99, source=".mlops/build/layer-x86_64-d.zip")
    graph = compile_config(Config.model_validate(SPEC), context(layer=layer))
    assert graph.resources["layer"].kind == "lambda_layer"
    assert graph.resources["layer-zip"].props["key"] == f"layers/{'d' * 64}.zip"
    functions = [r for r in graph.resources.values() if r.kind == "lambda_function"]
    assert functions and all(r.props["layers"] == [ref("layer", "layer_version_arn")]
                             for r in functions)
    order = graph.order()
    assert order.index("layer") < min(order.index(r.id) for r in functions)
    # Without a layer (the local data plane provides the packages) nothing changes.
    plain = compile_config(Config.model_validate(SPEC), context())
    assert "layer" not in plain.resources
    assert all("layers" not in r.props for r in plain.resources.values())


def test_cloud_targets_capture_through_a_firehose_stream() -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["endpoints"]["score"]["capture"] = {"sample_rate": 0.5}
    graph = compile_config(Config.model_validate(spec), context(capture_streams=True))
    stream = graph.resources["stream.score"]
    assert stream.kind == "firehose_stream"
    assert stream.props["prefix"] == "capture/score/dt=!{timestamp:yyyy-MM-dd}/"
    assert stream.props["compression"] == "GZIP" and stream.props["extension"] == ".jsonl.gz"
    fn = graph.resources["function.score"]
    assert fn.props["environment"]["MLOPS_CAPTURE_STREAM"] == stream.props["stream_name"]
    assert "stream.score" in fn.depends_on
    actions = [a for s in graph.resources["role.score"].props["policy"]["Statement"]
               for a in s["Action"]]
    assert "firehose:PutRecordBatch" in actions
    role = graph.resources["role.score-capture"].props
    assert role["trust_policy"]["Statement"][0]["Principal"] == {
        "Service": "firehose.amazonaws.com"}
    # No capture declared, or the local data plane: no stream.
    assert "stream.score-iam" not in graph.resources
    local = compile_config(Config.model_validate(spec), context())
    assert not any(r.kind == "firehose_stream" for r in local.resources.values())
