"""Which endpoints' new Lambda versions change nothing a rollout could judge. Pure.

A rollout compares a candidate with the version serving. When the plan leaves the served
model (name, version, bytes), the handler code, the handler and the layer as they are — a
memory, timeout, concurrency or environment change — both versions answer alike: the alias
moves at once, however the endpoint's rollout is declared (the plan's deployment of it shifts
all traffic at once: ``framework.plan.deployments``).
"""

from __future__ import annotations

from typing import Any

from framework.plan.deployments import config_only
from framework.plan.planner import Op, Plan


def unchanged_serving(plan: Plan) -> dict[str, str]:
    """endpoint → why its new version takes all traffic at once, for every endpoint whose
    alias moves to a new version with the same model, code and layer (and whose rollout is
    not already all at once)."""
    actions = {a.id: a for a in plan.actions}
    out: dict[str, str] = {}
    for alias in plan.actions:
        props: dict[str, Any] = alias.props or {}
        endpoint, rollout = props.get("endpoint"), props.get("rollout")
        if alias.kind != "lambda_alias" or not endpoint or not rollout \
                or rollout.get("strategy") == "all_at_once":
            continue
        version = actions.get(f"version.{endpoint}")
        if version is None or version.op not in (Op.create, Op.replace):
            continue
        why = config_only(actions.get(f"function.{endpoint}"), actions)
        if why:
            out[str(endpoint)] = why
    return out
