"""Which new Lambda versions take all traffic at once, as the plan's deployments decide
(``framework.plan.deployments.config_only``): a change of memory, timeout or environment
alone moves the alias at once; a new model, handler code or layer runs the rollout."""

from __future__ import annotations

import json
from typing import Any

from framework.compile import ArtifactInfo, CodeBundle
from tests.compile.test_compile import SPEC, context
from tests.plan.test_planner import deployed, graph_of, plan_for


def canary(**endpoint: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(SPEC))
    spec["endpoints"]["score"].update({"rollout": {"strategy": "canary", "steps": [10, 100]},
                                       **endpoint})
    return spec


AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"


def decided(after: dict[str, Any], **ctx: Any) -> dict[str, str]:
    """endpoint → why, for each deployment of a rolled-out endpoint that goes at once."""
    plan = plan_for(graph_of(after, **ctx), deployed(graph_of(canary())))
    return {str(a.props["endpoint"]): a.reason for a in plan.actions
            if a.kind == "alias_deployment" and a.props
            and a.props.get("config_name") == AT_ONCE and a.props.get("hooks") == {}}


def test_memory_only_change_moves_the_alias_at_once() -> None:
    got = decided(canary(memory=2048))
    assert set(got) == {"score"}
    assert got["score"].startswith("no model or code change (fraud-clf 1.2.0 as before; memory "
                            "changed): the new Lambda version takes all traffic at once")


def test_timeout_and_environment_changes_move_it_at_once_too() -> None:
    assert "timeout changed" in decided(canary(timeout=20))["score"]
    got = decided(canary(max_batch_rows=7))
    assert "environment changed" in got["score"]


def test_a_new_model_version_runs_the_rollout() -> None:
    spec = canary(memory=2048)
    spec["models"]["fraud-clf"]["version"] = "1.3.0"
    spec["endpoints"]["score-iam"]["model"] = "fraud-clf"
    other = {"fraud-clf": ArtifactInfo(sha256="b" * 64, size=1, source="x.onnx",
                                       metadata='{"name":"fraud-clf"}')}
    assert decided(spec, artifacts=other) == {}


def test_new_handler_code_runs_the_rollout() -> None:
    code = CodeBundle(sha256="d" * 64, size=1, source=".mlops/build/code.zip")
    assert decided(canary(memory=2048), code=code) == {}


def test_a_new_layer_runs_the_rollout() -> None:
    base = context()
    layers = {key: type(bundle)(**{**bundle.__dict__, "sha256": "e" * 64})
              for key, bundle in base.layers.items()}
    assert decided(canary(memory=2048), layers=layers) == {}


def test_all_at_once_endpoints_and_unchanged_ones_are_not_listed() -> None:
    spec = canary(memory=2048)
    spec["endpoints"]["score"]["rollout"] = {"strategy": "all_at_once"}
    assert decided(spec) == {}
    assert decided(canary()) == {}
