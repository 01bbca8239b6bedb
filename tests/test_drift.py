"""The plan's rule for endpoints' live aliases moved outside mlops (``framework.drift``): a
move nobody recorded is moved back; a monitor's recorded rollback is kept unless
``--undo-rollback``; a new version still ships, but not the very model version a rollback
took away."""

from __future__ import annotations

from typing import Any

import pytest

from framework.drift import LiveAlias, reconcile
from framework.errors import ConfigError
from framework.plan.planner import Action, Op, Plan

ROLLBACK = {"action": "rollback", "lambda_version": "3", "previous_lambda_version": "4",
            "version": "1.0.0", "previous": "1.0.1", "changed_by": "monitor:diagnosis-drift",
            "changed_at": "2026-03-01T12:00:00Z", "reason": "drift"}


def plan(new_model: str | None = None, alias_op: Op = Op.noop) -> Plan:
    env = {"MLOPS_MODEL_NAME": "diagnosis", "MLOPS_MODEL_VERSION": new_model or "1.0.1"}
    moving = new_model is not None
    actions = (
        Action(Op.update if moving else Op.noop, "function.predict", "lambda_function",
               "x", {"function_name": "fn", "environment": env}),
        Action(Op.create if moving else Op.noop, "version.predict", "lambda_version", "x",
               {"function_name": "fn"}),
        Action(Op.update if moving else alias_op, "alias.predict", "lambda_alias",
               "follows version.predict" if moving else "up to date",
               {"function_name": "fn", "alias": "live"}),
    )
    return Plan(project="cancer-dx", stage="dev", target="local", region="us-east-1",
                account_id="123456789012", state_lineage="l", state_serial=3, actions=actions)


def alias(version: str = "3", rollback: dict[str, Any] | None = None) -> LiveAlias:
    return LiveAlias(endpoint="predict", function="fn", version=version,
                     model="diagnosis 1.0.0" if version == "3" else "diagnosis 1.0.1",
                     recorded="4", recorded_model="diagnosis 1.0.1", rollback=rollback)


def the_alias(p: Plan) -> Action:
    return next(a for a in p.actions if a.id == "alias.predict")


def test_nothing_moved_nothing_said() -> None:
    same = reconcile(plan(), {"predict": alias("4")}, undo_rollback=False)
    assert the_alias(same).op is Op.noop and not same.hints


def test_a_move_nobody_recorded_is_moved_back() -> None:
    got = reconcile(plan(), {"predict": alias()}, undo_rollback=False)
    act = the_alias(got)
    assert act.op is Op.update
    assert act.reason == ("live alias of predict serves version 3 (diagnosis 1.0.0), state "
                          "says 4 (diagnosis 1.0.1): deploy moves it back to 4")
    assert [(c.key, c.before, c.after) for c in act.changes] == [("function_version", "3",
                                                                   "4")]
    assert got.counts()["update"] == 1
    moving = reconcile(plan("1.0.2"), {"predict": alias()}, undo_rollback=False)
    assert the_alias(moving).reason == "follows version.predict"
    assert "this deploy moves it to the new version (diagnosis 1.0.2)" in moving.hints[0]


def test_a_recorded_rollback_is_kept_and_says_how_to_undo_it() -> None:
    got = reconcile(plan(), {"predict": alias(rollback=ROLLBACK)}, undo_rollback=False)
    act = the_alias(got)
    assert act.op is Op.noop and act.reason.startswith("kept: predict was rolled back by "
                                                       "monitor:diagnosis-drift")
    [hint] = got.hints
    assert "live alias of predict serves version 3 (diagnosis 1.0.0), state says 4 " \
           "(diagnosis 1.0.1)" in hint
    assert "--undo-rollback` moves it back to 4" in hint
    # an update of the alias' own settings would move it too: it waits as well
    settings = reconcile(plan(alias_op=Op.update), {"predict": alias(rollback=ROLLBACK)},
                         undo_rollback=False)
    assert the_alias(settings).op is Op.noop


def test_undo_rollback_moves_it_back() -> None:
    got = reconcile(plan(), {"predict": alias(rollback=ROLLBACK)}, undo_rollback=True)
    act = the_alias(got)
    assert act.op is Op.update and act.reason.startswith("undo the rollback (predict was "
                                                         "rolled back by monitor")
    assert act.reason.endswith("move the live alias from version 3 (diagnosis 1.0.0) back to "
                               "4 (diagnosis 1.0.1)")


def test_a_new_model_version_replaces_a_rollback_but_the_rolled_back_one_is_refused() -> None:
    fixed = reconcile(plan("1.0.2"), {"predict": alias(rollback=ROLLBACK)},
                      undo_rollback=False)
    assert the_alias(fixed).op is Op.update
    assert "this deploy replaces diagnosis 1.0.0 with diagnosis 1.0.2" in fixed.hints[0]
    with pytest.raises(ConfigError) as refused:
        reconcile(plan("1.0.1"), {"predict": alias(rollback=ROLLBACK)}, undo_rollback=False)
    [problem] = refused.value.problems
    assert problem.where == "endpoints.predict"
    assert "deploying would serve diagnosis 1.0.1 again, which predict was rolled back by " \
           "monitor:diagnosis-drift" in problem.what
    assert "--undo-rollback" in problem.hint
    assert refused.value.exit_code == 2
    allowed = reconcile(plan("1.0.1"), {"predict": alias(rollback=ROLLBACK)},
                        undo_rollback=True)
    assert the_alias(allowed).op is Op.update


def test_a_deployment_that_moved_the_alias_is_left_to_the_plan() -> None:
    recording = plan(alias_op=Op.update)
    recording = Plan(**{**recording.__dict__, "actions": tuple(
        a if a.id != "alias.predict" else Action(Op.update, a.id, a.kind,
                                                 "record that it serves version 3: ...",
                                                 a.props)
        for a in recording.actions)})
    got = reconcile(recording, {"predict": alias()}, undo_rollback=False)
    assert the_alias(got).reason.startswith("record that")
