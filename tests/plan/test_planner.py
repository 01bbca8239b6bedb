"""Plan is a pure diff: typed actions with a reason each, in dependency order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework.compile import compile_config
from framework.compile.graph import ResourceGraph
from framework.config.models import Config
from framework.errors import ConfigError
from framework.plan import Entry, Op, Plan, State, make_plan
from tests.compile.test_compile import SPEC, context
from tests.conftest import check_golden


def graph_of(spec: dict[str, Any], **ctx: Any) -> ResourceGraph:
    return compile_config(Config.model_validate(spec), context(**ctx))


def deployed(graph: ResourceGraph) -> State:
    """The state a successful apply of ``graph`` leaves (with made-up outputs)."""
    state = State(project="fraud", stage="dev", lineage="L")
    for rid in graph.order():
        res = graph.resources[rid]
        outputs = {"api_id": "api1", "integration_id": f"i-{rid}", "version": "1"}
        state = state.record(rid, Entry(res.kind, res.props, outputs, res.all_dependencies()))
    return state


def plan_for(graph: ResourceGraph, state: State, live: dict[str, bool] | None = None,
             destroy: bool = False) -> Plan:
    return make_plan(graph, state, live or {}, target="local", region="us-east-1",
                     account_id="123456789012", destroy=destroy)


def ops(plan: Plan) -> dict[str, str]:
    return {a.id: a.op.value for a in plan.changes}


def mutated(**changes: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(SPEC))
    for path, value in changes.items():
        node = spec
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return spec


def test_first_deploy_creates_everything_in_order() -> None:
    graph = graph_of(SPEC)
    plan = plan_for(graph, State(project="fraud", stage="dev", lineage=""))
    assert all(a.op is Op.create for a in plan.actions)
    assert [a.id for a in plan.actions] == graph.order()


def test_second_plan_is_empty() -> None:
    graph = graph_of(SPEC)
    plan = plan_for(graph, deployed(graph))
    assert plan.changes == ()
    assert plan.counts()["no-op"] == len(graph.resources)


def test_memory_change_updates_function_publishes_version_moves_alias() -> None:
    before = graph_of(SPEC)
    after = graph_of(mutated(endpoints__score__memory=2048))
    plan = plan_for(after, deployed(before))
    assert ops(plan) == {"function.score": "update", "version.score": "replace",
                         "alias.score": "update"}
    fn = next(a for a in plan.actions if a.id == "function.score")
    assert fn.reason == "memory: 512 → 2048"
    alias = next(a for a in plan.actions if a.id == "alias.score")
    assert alias.reason == "follows version.score"
    check_golden("plan_memory_bump.json", plan.to_json())


def test_version_bump_uploads_new_artifact_and_keeps_old() -> None:
    before = graph_of(SPEC)
    spec = json.loads(json.dumps(SPEC))
    spec["models"]["fraud-clf"]["version"] = "1.3.0"
    spec["endpoints"]["score-iam"]["model"] = "fraud-clf"
    after = graph_of(spec)
    plan = plan_for(after, deployed(before))
    got = ops(plan)
    assert got["model.fraud-clf@1.3.0"] == "create"
    assert got["model.fraud-clf@1.2.0"] == "delete"
    deleted = next(a for a in plan.actions if a.id == "model.fraud-clf@1.2.0")
    assert "kept in the registry" in deleted.reason
    assert got["version.score"] == "replace"


def test_removed_endpoint_is_deleted_in_reverse_dependency_order() -> None:
    before = graph_of(SPEC)
    spec = json.loads(json.dumps(SPEC))
    del spec["endpoints"]["score-iam"]
    plan = plan_for(graph_of(spec), deployed(before))
    deletes = [a.id for a in plan.changes if a.op is Op.delete]
    mine = {rid for rid in before.resources if rid.endswith(".score-iam") or ".score-iam." in rid}
    assert set(deletes) == mine
    assert deletes.index("route.score-iam") < deletes.index("integration.score-iam")
    assert deletes.index("function.score-iam") < deletes.index("role.score-iam")


def test_changed_bytes_under_same_version_are_refused() -> None:
    from framework.compile import ArtifactInfo

    before = graph_of(SPEC)
    other = ArtifactInfo(sha256="b" * 64, size=1, source="artifacts/fraud.onnx",
                         metadata='{"name":"fraud-clf"}')
    after = graph_of(SPEC, artifacts={"fraud-clf": other})
    with pytest.raises(ConfigError, match="bump the model's version"):
        plan_for(after, deployed(before))


def test_resource_deleted_outside_is_recreated() -> None:
    graph = graph_of(SPEC)
    plan = plan_for(graph, deployed(graph), live={"logs.score": False})
    assert ops(plan) == {"logs.score": "create"}
    assert "deleted outside" in plan.changes[0].reason


def test_destroy_deletes_everything_bucket_last() -> None:
    graph = graph_of(SPEC)
    plan = plan_for(ResourceGraph(), deployed(graph), destroy=True)
    assert {a.op for a in plan.actions} == {Op.delete}
    assert plan.actions[-1].id == "registry"
    assert len(plan.actions) == len(graph.resources)


def test_plan_json_round_trips() -> None:
    graph = graph_of(SPEC)
    plan = plan_for(graph_of(mutated(endpoints__score__memory=2048)), deployed(graph))
    assert Plan.from_json(plan.to_json()) == plan


def test_garbage_plan_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a saved plan"):
        Plan.from_json("{}", source="plan.json")
