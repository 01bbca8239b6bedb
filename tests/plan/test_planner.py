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
    assert alias.reason == ("move from version 1 (fraud-clf 1.2.0) to a new version "
                            "(fraud-clf 1.2.0)")
    version = next(a for a in plan.actions if a.id == "version.score")
    assert version.reason == ("publish a new version (fraud-clf 1.2.0); version 1 "
                              "(fraud-clf 1.2.0) stays, for rollback")
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
    assert plan.retires(deleted) and plan.label(deleted) == "retire (kept in registry)"
    assert got["version.score"] == "replace"
    alias = next(a for a in plan.actions if a.id == "alias.score")
    assert alias.reason == ("move from version 1 (fraud-clf 1.2.0) to a new version "
                            "(fraud-clf 1.3.0)")


def test_destroy_deletes_model_versions_for_real() -> None:
    plan = plan_for(ResourceGraph(), deployed(graph_of(SPEC)), destroy=True)
    model = next(a for a in plan.actions if a.kind == "model_version")
    assert not plan.retires(model) and plan.label(model) == "delete"


def test_environment_change_names_the_variables_and_masks_secrets() -> None:
    from framework.plan.planner import Change, describe, describe_environment

    before = graph_of(SPEC)
    plan = plan_for(graph_of(mutated(endpoints__score__max_batch_rows=7)), deployed(before))
    fn = next(a for a in plan.actions if a.id == "function.score")
    assert fn.reason == "environment MLOPS_MAX_BATCH_ROWS: 1000 → 7"
    got = describe_environment({"API_KEY": "k1", "DB_PASSWORD": "p", "MODE": "a",
                                "OLD": "x"},
                               {"API_KEY": "k2", "DB_PASSWORD": "p", "MODE": "b",
                                "auth_token": "t"})
    assert got == ("environment API_KEY: *** → ***, MODE: a → b, OLD: x → (unset), "
                   "auth_token: (unset) → ***")
    assert "k1" not in describe((Change("environment", {"MY_SECRET": "k1"}, {}),))
    settings = describe_environment({"MLOPS_MONITOR": '{"model": {"version": "1.0.0"}, "x": 1}'},
                                    {"MLOPS_MONITOR": '{"model": {"version": "1.1.0"}, "x": 1}'})
    assert settings == "environment MLOPS_MONITOR (model.version: 1.0.0 → 1.1.0)"


def test_gates_tightened_without_a_version_bump_give_a_hint_not_an_update() -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["models"]["fraud-clf"]["gates"] = {"size_mb": "<=100"}
    before = deployed(graph_of(spec))
    spec["models"]["fraud-clf"]["gates"] = {"size_mb": "<=50"}
    plan = plan_for(graph_of(spec), before)
    assert plan.changes == ()
    assert plan.hints == ("gates changed for fraud-clf 1.2.0 but the version did not: gates "
                          "run on a new version; bump `version` to re-check",)
    assert Plan.from_json(plan.to_json()) == plan


def test_state_without_recorded_gates_gives_no_hint() -> None:
    graph = graph_of(SPEC)
    state = deployed(graph)
    entry = state.resources["model.fraud-clf@1.2.0"]
    props = {k: v for k, v in entry.props.items() if k != "gates"}
    state = state.record("model.fraud-clf@1.2.0", Entry(entry.kind, props, entry.outputs,
                                                          entry.depends_on))
    plan = plan_for(graph, state)
    assert plan.changes == () and plan.hints == ()


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


def test_pull_request_comment_says_retire_and_gives_the_hints() -> None:
    from framework.ci import plan_markdown

    before = graph_of(SPEC)
    spec = json.loads(json.dumps(SPEC))
    spec["models"]["fraud-clf"]["version"] = "1.3.0"
    spec["endpoints"]["score-iam"]["model"] = "fraud-clf"
    plan = plan_for(graph_of(spec), deployed(before))
    plan = Plan(**{**plan.__dict__, "hints": ("bump it",)})
    text = plan_markdown(plan)
    assert "| ➖ retire (kept in registry) | `model.fraud-clf@1.2.0` |" in text
    assert "> **hint:** bump it" in text
    assert "1 to retire (kept in registry)" in plan.summary()
