"""A shadow-rolled endpoint's function is told where its copies go and may send them there,
and nothing more; other endpoints get neither (and their compiled properties stay as they
were)."""

from __future__ import annotations

import copy
from typing import Any

from framework.compile import compile_config
from framework.config.models import Config
from tests.compile.test_compile import SPEC, context

ALIAS = "arn:aws:lambda:us-east-1:123456789012:function:fraud-dev-score:shadow"


def shadowed(rate: float | None = None) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    rollout: dict[str, Any] = {"strategy": "shadow"}
    if rate is not None:
        rollout["shadow_sample_rate"] = rate
    spec["endpoints"]["score"]["rollout"] = rollout
    return spec


def test_the_serving_function_knows_its_shadow_target_and_rate() -> None:
    graph = compile_config(Config.model_validate(shadowed(0.25)), context())
    env = graph.resources["function.score"].props["environment"]
    assert env["MLOPS_SHADOW_TARGET"] == ALIAS
    assert env["MLOPS_SHADOW_SAMPLE_RATE"] == "0.25"
    other = graph.resources["function.score-iam"].props["environment"]
    assert "MLOPS_SHADOW_TARGET" not in other and "MLOPS_SHADOW_SAMPLE_RATE" not in other
    assert graph.resources["alias.score"].props["rollout"]["shadow_sample_rate"] == 0.25
    assert "shadow_sample_rate" not in graph.resources["alias.score-iam"].props["rollout"]
    default = compile_config(Config.model_validate(shadowed()), context())
    assert default.resources["function.score"].props["environment"][
        "MLOPS_SHADOW_SAMPLE_RATE"] == "1"


def test_the_serving_role_may_invoke_its_shadow_alias_and_read_it_only() -> None:
    graph = compile_config(Config.model_validate(shadowed()), context())
    statements = {s["Sid"]: s for s in graph.resources["role.score"].props["policy"]["Statement"]}
    assert statements["SendShadowCopies"]["Action"] == ["lambda:InvokeFunction"]
    assert statements["SendShadowCopies"]["Resource"] == [ALIAS]
    assert statements["ReadShadowAlias"]["Action"] == ["lambda:GetAlias"]
    assert statements["ReadShadowAlias"]["Resource"] == [ALIAS.rsplit(":", 1)[0], ALIAS]
    others = graph.resources["role.score-iam"].props["policy"]["Statement"]
    assert not any(a.startswith("lambda:") for s in others for a in s["Action"])
