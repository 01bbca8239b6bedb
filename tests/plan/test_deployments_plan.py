"""Deployments in the plan (``framework.plan.deployments``): a new version of an endpoint
rolled out step by step is a CodeDeploy deployment the plan starts and describes in the
reviewer's words; a version that changes nothing a rollout judges goes at once; what CodeDeploy
did since the last apply is recorded; AWS's minutes are checked on AWS targets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from framework.compile import ArtifactInfo
from framework.errors import ConfigError
from framework.plan import make_plan
from framework.plan.planner import Op, Plan
from framework.plan.state import Entry, State
from tests.compile.test_compile import SPEC
from tests.plan.test_planner import deployed, graph_of, plan_for

HOLDOUT = {"fraud-clf": ArtifactInfo(sha256="h" * 64, size=9, source="data/holdout.csv",
                                     metadata="")}
NEXT = {"fraud-clf": ArtifactInfo(sha256="b" * 64, size=1, source="x.onnx",
                                  metadata='{"name":"fraud-clf"}')}


def canary(every: str = "15s", **watch: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["models"]["fraud-clf"]["holdout"] = {"path": "data/holdout.csv", "label": "y"}
    spec["models"]["fraud-clf"]["gates"] = {"roc_auc": ">=0.9"}
    spec["endpoints"]["score"]["rollout"] = {"strategy": "canary", "steps": [10, 100],
                                             "every": every, "watch": watch}
    return spec


def bumped(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    spec["models"]["fraud-clf"]["version"] = "1.3.0"
    spec["endpoints"]["score-iam"]["model"] = "fraud-clf"
    return spec


def actions(plan: Plan) -> dict[str, Any]:
    return {a.id: a for a in plan.actions}


def test_a_first_deploy_points_the_alias_at_its_version_without_a_deployment() -> None:
    plan = plan_for(graph_of(canary(), holdouts=HOLDOUT), State("fraud", "dev", lineage="L"))
    found = actions(plan)
    assert "deployment.score" not in found
    assert found["alias.score"].op is Op.create
    assert found["deploy-group.score"].op is Op.create
    assert {"alarm.score.error-rate", "deploy-app", "role.codedeploy", "function.hook-score",
            "holdout.fraud-clf", "deploy-config.Canary10Percent15Seconds"} <= set(found)


def test_a_new_model_version_is_a_deployment_in_the_reviewers_words() -> None:
    state = deployed(graph_of(canary(), holdouts=HOLDOUT))
    plan = plan_for(graph_of(bumped(canary()), artifacts=NEXT, holdouts=HOLDOUT), state)
    found = actions(plan)
    deployment = found["deployment.score"]
    assert deployment.op is Op.create and deployment.kind == "alias_deployment"
    assert deployment.reason == ("start canary 10% for 15s, then 100%, after a pre-traffic "
                                 "check: fraud-clf 1.2.0 → 1.3.0 (Lambda version 1 → new)")
    assert deployment.props is not None
    assert deployment.props["target_version"] == {"$ref": "version.score", "attr": "version"}
    assert deployment.props["config_name"] == "fraud-dev-Canary10Percent15Seconds"
    assert deployment.props["hooks"] == {"BeforeAllowTraffic": "fraud-dev-hook-score"}
    assert {"alias.score", "deploy-group.score", "version.score",
            "function.hook-score"} <= set(deployment.depends_on)
    # The alias does not move itself: the deployment moves it.
    assert found["alias.score"].op is Op.noop
    assert found["alias.score"].reason == "moved by deployment.score"
    # The alarms follow the model version the deployment brings.
    assert found["alarm.score.error-rate"].op is Op.replace
    assert "fraud-dev-score-1.3.0-error-rate" in found["alarm.score.error-rate"].reason
    # An endpoint rolled out all at once moves its alias itself.
    assert found["alias.score-iam"].op is Op.update and "deployment.score-iam" not in found
    ids = [a.id for a in plan.actions]
    assert ids.index("deployment.score") == ids.index("alias.score") + 1


def test_hold_without_traffic_holds_the_deployment_after_the_last_step() -> None:
    spec = canary(min_requests=25, hold_without_traffic=True)
    state = deployed(graph_of(spec, holdouts=HOLDOUT))
    plan = plan_for(graph_of(bumped(spec), artifacts=NEXT, holdouts=HOLDOUT), state)
    deployment = actions(plan)["deployment.score"]
    assert deployment.props is not None
    assert deployment.props["hooks"] == {"BeforeAllowTraffic": "fraud-dev-hook-score",
                                         "AfterAllowTraffic": "fraud-dev-hook-score"}
    assert "held until 25 requests are judged" in deployment.reason


def test_a_version_that_changes_nothing_judged_goes_at_once() -> None:
    state = deployed(graph_of(canary(), holdouts=HOLDOUT))
    spec = canary()
    spec["endpoints"]["score"]["memory"] = 2048
    deployment = actions(plan_for(graph_of(spec, holdouts=HOLDOUT), state))["deployment.score"]
    assert deployment.props is not None
    assert deployment.props["config_name"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert deployment.props["hooks"] == {}
    assert deployment.reason.startswith("no model or code change (fraud-clf 1.2.0 as before; "
                                        "memory changed): the new Lambda version takes all "
                                        "traffic at once")


def started(state: State, status: str = "Created") -> State:
    """``state`` after an apply that started a deployment of score from version 1 to 2."""
    return state.record("deployment.score", Entry(
        "alias_deployment", {"endpoint": "score", "application_name": "fraud-dev",
                             "group_name": "fraud-dev-score",
                             "function_name": "fraud-dev-score", "alias": "live",
                             "target_version": {"$ref": "version.score", "attr": "version"},
                             "config_name": "c", "hooks": {}, "description": "d"},
        {"deployment_id": "d-ABCDEFGHI", "status": status, "current_version": "1",
         "target_version": "2"}, ("alias.score",)))


def test_what_codedeploy_did_is_recorded_and_a_second_plan_is_empty() -> None:
    graph = graph_of(canary(), holdouts=HOLDOUT)
    state = started(deployed(graph))
    alias = state.resources["alias.score"].outputs
    assert plan_for(graph, state).changes == ()  # nothing observed: nothing to record
    succeeded = {"deployment.score": {**state.resources["deployment.score"].outputs,
                                      "status": "Succeeded"},
                 "alias.score": {**alias, "version": "2"}}
    plan = make_plan(graph, state, {}, target="local", region="us-east-1",
                     account_id="123456789012", observed=succeeded)
    found = {a.id: a for a in plan.changes}
    assert set(found) == {"deployment.score", "alias.score"}
    assert found["deployment.score"].reason == "record that deployment d-ABCDEFGHI succeeded"
    assert found["alias.score"].reason == ("record that it serves version 2: deployment "
                                           "d-ABCDEFGHI succeeded")
    rolled_back = {"deployment.score": {
        **state.resources["deployment.score"].outputs, "status": "Failed",
        "rollback_deployment_id": "d-ZYXWVUTSR", "error": "HOOK_EXECUTION_FAILURE: the hook"},
        "alias.score": alias}
    plan = make_plan(graph, state, {}, target="local", region="us-east-1",
                     account_id="123456789012", observed=rolled_back)
    assert [a.id for a in plan.changes] == ["deployment.score"]  # the alias serves 1 still
    assert "failed and was rolled back (HOOK_EXECUTION_FAILURE: the hook)" in \
        plan.changes[0].reason
    shifting = {"alias.score": {**alias, "weights": {"2": 0.1}},
                "deployment.score": {**state.resources["deployment.score"].outputs,
                                     "status": "InProgress"}}
    plan = make_plan(graph, state, {}, target="local", region="us-east-1",
                     account_id="123456789012", observed=shifting)
    reasons = {a.id: a.reason for a in plan.changes}
    assert reasons["alias.score"] == ("record that it serves version 1 (10% on version 2): "
                                      "deployment d-ABCDEFGHI is under way")
    # Recorded deployments are history: kept while the endpoint's group is declared.
    assert "deployment.score" not in {a.id for a in plan.actions if a.op is Op.delete}
    destroy = make_plan(graph_of({**canary(), "endpoints": {}, "monitors": {}},
                                 holdouts=HOLDOUT), state, {}, target="local",
                        region="us-east-1", account_id="123456789012", destroy=True)
    assert "deployment.score" in {a.id for a in destroy.actions if a.op is Op.delete}


def test_aws_counts_bake_times_in_whole_minutes() -> None:
    graph = graph_of(canary(every="15s"), holdouts=HOLDOUT)
    state = State("fraud", "dev", lineage="L")
    with pytest.raises(ConfigError) as info:
        make_plan(graph, state, {}, target="aws", region="us-east-1", account_id="1")
    (problem,) = info.value.problems
    assert problem.where == "endpoints.score.rollout.every"
    assert "15s is not whole minutes" in problem.what
    make_plan(graph, state, {}, target="local", region="us-east-1", account_id="1")  # fine
    make_plan(graph_of(canary(every="2m"), holdouts=HOLDOUT), state, {}, target="aws",
              region="us-east-1", account_id="1")


def test_steps_codedeploy_cannot_run_are_refused_where_declared() -> None:
    spec = canary()
    spec["endpoints"]["score"]["rollout"]["steps"] = [10, 50, 100]
    spec["endpoints"]["score"]["rollout"]["watch"] = {"drift": True}
    spec["models"]["fraud-clf"].pop("holdout")
    spec["models"]["fraud-clf"]["gates"] = {}
    with pytest.raises(ConfigError) as info:
        graph_of(spec)
    found = {p.where: p for p in info.value.problems}
    assert set(found) == {"endpoints.score.rollout.steps", "endpoints.score.rollout.watch.drift"}
    assert "steps: [10, 100]" in found["endpoints.score.rollout.steps"].hint
    assert "declare models.fraud-clf.holdout" in found["endpoints.score.rollout.watch.drift"].hint
